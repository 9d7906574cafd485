package mcp

// Connect opens an in-memory client session, for the external tests.
var Connect = connect

// Dial is connect that returns the client's error.
var Dial = dial
