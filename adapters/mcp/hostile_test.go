package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawClient writes JSON-RPC lines to a server over an IOTransport, as a
// hostile stdio client may, and reads its answers.
type rawClient struct {
	w   io.WriteCloser
	out *bufio.Scanner
}

func dialRaw(t *testing.T, srv *sdk.Server) *rawClient {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ss, err := srv.Connect(context.Background(),
		&sdk.IOTransport{Reader: inR, Writer: outW}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { inW.Close(); ss.Close() })
	return &rawClient{w: inW, out: bufio.NewScanner(outR)}
}

// send writes line, and with an id, returns the answer.
func (c *rawClient) send(t *testing.T, line string) map[string]any {
	t.Helper()
	_, err := io.WriteString(c.w, line+"\n")
	require.NoError(t, err)
	require.True(t, c.out.Scan(), "an answer to %s", line)
	var got map[string]any
	require.NoError(t, json.Unmarshal(c.out.Bytes(), &got), c.out.Text())
	return got
}

// TestStdioHostileMethods: without a valid host token, no request
// gets a result, whatever its method's case, a notification's name
// with an id, or params that are missing or null; a notifications/
// initialized sent after the refused handshake does not open the
// session either.
func TestStdioHostileMethods(t *testing.T) {
	s := newStdioServer(t, false)
	s.host.set("", nil)
	c := dialRaw(t, s.srv)
	init := `"params":{"protocolVersion":"2025-06-18","capabilities":{},` +
		`"clientInfo":{"name":"x","version":"1"}}`
	lines := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize",` + init + `}`,
		`{"jsonrpc":"2.0","id":2,"method":"Initialize",` + init + `}`,
		`{"jsonrpc":"2.0","id":3,"method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":4,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":null}`,
		`{"jsonrpc":"2.0","id":6,"method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":7,"method":"Tools/Call","params":{"name":"whoami"}}`,
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"whoami"}}`,
		`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":10,"method":"resources/list"}`,
		`{"jsonrpc":"2.0","id":11,"method":"notifications/tools/call",` +
			`"params":{"name":"whoami"}}`,
	}
	for _, line := range lines {
		got := c.send(t, line)
		assert.Nil(t, got["result"], line)
		assert.NotNil(t, got["error"], line)
	}
	// A notification gets no answer; the next request is still refused.
	_, err := io.WriteString(c.w, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
	require.NoError(t, err)
	got := c.send(t, `{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"whoami"}}`)
	assert.Nil(t, got["result"])
	assert.NotNil(t, got["error"])
}

// TestStdioHostileBatch: a batch of requests is refused request by
// request, as the same requests sent one at a time are.
func TestStdioHostileBatch(t *testing.T) {
	s := newStdioServer(t, false)
	s.host.set("", nil)
	c := dialRaw(t, s.srv)
	_, err := io.WriteString(c.w, `[{"jsonrpc":"2.0","id":1,"method":"ping"},`+
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami"}}]`+"\n")
	require.NoError(t, err)
	var answers []map[string]any
	for len(answers) < 2 && c.out.Scan() {
		var one map[string]any
		if json.Unmarshal(c.out.Bytes(), &one) == nil {
			answers = append(answers, one)
			continue
		}
		var many []map[string]any
		require.NoError(t, json.Unmarshal(c.out.Bytes(), &many), c.out.Text())
		answers = append(answers, many...)
	}
	require.Len(t, answers, 2)
	for _, a := range answers {
		assert.Nil(t, a["result"], a)
		assert.NotNil(t, a["error"], a)
	}
}
