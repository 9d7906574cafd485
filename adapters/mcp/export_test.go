package mcp

// Connect opens an in-memory client session, for the external tests.
var Connect = connect
