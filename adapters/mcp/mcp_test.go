package mcp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// policyFunc decides by action name: "blocked" is blocked, "throttled"
// throttled, "stepup" challenged, anything else allowed.
type policyFunc struct{}

func (policyFunc) Decide(_ context.Context, ev *runtimeid.Evaluation) (runtimeid.Decision, error) {
	switch ev.Action.Name {
	case "blocked":
		return runtimeid.Decision{Outcome: runtimeid.Block, Rule: "r", Reason: "nope"}, nil
	case "throttled":
		return runtimeid.Decision{Outcome: runtimeid.Block, Rule: "r",
			Reason: "agent_rate_high"}, nil
	case "stepup":
		return runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "r", Reason: "why",
			StepUp: &runtimeid.StepUp{MaxAge: time.Minute}}, nil
	}
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default"}, nil
}

func newAdapter(t *testing.T, o Options) *Adapter {
	t.Helper()
	e, err := runtimeid.New(runtimeid.Config{Policy: policyFunc{},
		Token: runtimeid.TokenConfig{InsecureSkipAuthentication: true},
		Now:   func() time.Time { return t0 }})
	require.NoError(t, err)
	o.Engine = e
	o.Policy = policyFunc{}
	o.Tools = map[string]Tool{
		"read": {Sensitivity: runtimeid.Low}, "drop": {Action: "blocked"},
		"spam": {Action: "throttled"}, "pay": {Action: "stepup"},
	}
	a, err := New(o)
	require.NoError(t, err)
	return a
}

func TestNewOptions(t *testing.T) {
	_, err := New(Options{})
	assert.ErrorIs(t, err, ErrOptions)
	a := newAdapter(t, Options{})
	assert.Equal(t, runtimeid.Action{Name: "mcp:unknown_tool",
		Sensitivity: runtimeid.High}, a.action("nope"))
	assert.Equal(t, runtimeid.Action{Name: "read", Sensitivity: runtimeid.Low},
		a.action("read"))
}

func post(t *testing.T, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func callBody(tool string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `"}}`
}

func TestHandlerRefusesCalls(t *testing.T) {
	a := newAdapter(t, Options{RetryAfter: 30 * time.Second})
	var reached string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reached = string(b)
		ev := runtimeid.FromContext(r.Context())
		assert.Equal(t, "read", ev.Action.Name)
	})
	h := a.Handler(next)

	tests := []struct {
		tool, status, body, retry string
		code                      int
	}{
		{"drop", "200", `{"jsonrpc":"2.0","id":7,"error":{"code":-32060,` +
			`"message":"runtimeid: blocked: nope","data":{"reason":"nope","outcome":"block"}}}`,
			"", 200},
		{"spam", "429", `{"jsonrpc":"2.0","id":7,"error":{"code":-32062,` +
			`"message":"runtimeid: throttled: agent_rate_high","data":{"reason":` +
			`"agent_rate_high","outcome":"block","retry_after":30}}}`, "30", 429},
		{"pay", "401", `{"jsonrpc":"2.0","id":7,"error":{"code":-32061,` +
			`"message":"runtimeid: step-up required: why","data":{"reason":"why",` +
			`"outcome":"challenge","max_age":60}}}`, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			w := post(t, h, callBody(tt.tool))
			assert.Equal(t, tt.code, w.Code)
			assert.JSONEq(t, tt.body, w.Body.String())
			assert.Equal(t, tt.retry, w.Header().Get("Retry-After"))
		})
	}
	w := post(t, h, callBody("pay"))
	assert.Equal(t, `Bearer error="insufficient_user_authentication", `+
		`error_description="step-up authentication required: why", max_age=60`,
		w.Header().Get("WWW-Authenticate"))
	assert.Empty(t, reached)

	// An allowed call reaches next with its body intact.
	w = post(t, h, callBody("read"))
	assert.Equal(t, 200, w.Code)
	assert.Equal(t, callBody("read"), reached)
}

func TestHandlerRefusesBadBodies(t *testing.T) {
	a := newAdapter(t, Options{MaxBodyBytes: 100})
	h := a.Handler(http.NotFoundHandler())
	w := post(t, h, callBody(strings.Repeat("x", 64)))
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	w = post(t, h, "["+callBody("read")+"]")
	assert.Equal(t, http.StatusBadRequest, w.Code)
}

func FuzzPeek(f *testing.F) {
	f.Add(callBody("read"))
	f.Add(`[{"method":"tools/call"}]`)
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1,"_meta":[]}}`)
	a, err := New(Options{Engine: &runtimeid.Engine{}})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/mcp", strings.NewReader(body))
		call, _ := a.peek(httptest.NewRecorder(), r)
		if call != nil {
			require.NotEmpty(t, call.action.Name)
		}
	})
}

// session connects an in-memory client to a server behind the
// middleware, as over stdio: nothing passes the HTTP layer.
func session(t *testing.T, a *Adapter) *sdk.ClientSession {
	t.Helper()
	return connect(t, testServer(a))
}

// testServer is a server with the tools of newAdapter behind a's
// middleware.
func testServer(a *Adapter) *sdk.Server {
	s := sdk.NewServer(&sdk.Implementation{Name: "t", Version: "1"}, nil)
	for _, name := range []string{"read", "drop", "spam", "pay"} {
		sdk.AddTool(s, &sdk.Tool{Name: name}, func(ctx context.Context,
			_ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
			ev := runtimeid.FromContext(ctx)
			return &sdk.CallToolResult{Content: []sdk.Content{
				&sdk.TextContent{Text: ev.Action.Name}}}, nil, nil
		})
	}
	a.Install(s)
	return s
}

// connect opens a client session with s over in-memory transports.
func connect(t *testing.T, s *sdk.Server) *sdk.ClientSession {
	t.Helper()
	cs, err := dial(t, s)
	require.NoError(t, err)
	return cs
}

// dial is connect that returns the client's error: the server's
// answer to initialize.
func dial(t *testing.T, s *sdk.Server) (*sdk.ClientSession, error) {
	t.Helper()
	st, ct := sdk.NewInMemoryTransports()
	ctx := context.Background()
	_, err := s.Connect(ctx, st, nil)
	require.NoError(t, err)
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "c", Version: "1"}, nil).
		Connect(ctx, ct, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { cs.Close() })
	return cs, nil
}

func TestMiddlewareWithoutHTTP(t *testing.T) {
	cs := session(t, newAdapter(t, Options{}))
	ctx := context.Background()

	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read"})
	require.NoError(t, err)
	assert.Equal(t, "read", res.Content[0].(*sdk.TextContent).Text)

	_, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "pay"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "runtimeid: step-up required: why")

	// tools/list hides what the policy blocks, and only that.
	list, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	var names []string
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
	}
	assert.Equal(t, []string{"pay", "read"}, names)
}

func TestRefusalDataIsStable(t *testing.T) {
	a := newAdapter(t, Options{})
	ev := &runtimeid.Evaluation{Err: io.EOF, Decision: runtimeid.Decision{
		Outcome: runtimeid.Block, Reason: runtimeid.CodeEvaluationError}}
	rf := a.refuse(context.Background(), ev)
	var data map[string]any
	require.NoError(t, json.Unmarshal(rf.err.Data, &data))
	assert.Equal(t, map[string]any{"reason": "evaluation_error", "outcome": "block"}, data)
	assert.Equal(t, "runtimeid: blocked: evaluation_error", rf.err.Message)
}

func TestTokenInfoSeesBearerNextSeesSentHeader(t *testing.T) {
	tests := []struct {
		name, scheme, sent string
	}{
		{"DPoP, as the client spelled it", "DPoP", "dpop  tok"},
		{"Bearer, untouched", "Bearer", "Bearer tok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &runtimeid.Evaluation{
				Identity:   &runtimeid.Identity{Issuer: "iss", Subject: "alice"},
				Credential: runtimeid.Credential{Scheme: tt.scheme, Token: "tok"},
			}
			r := httptest.NewRequest("POST", "/mcp", nil)
			r.Header["Authorization"] = []string{tt.sent}
			r.Header.Set("DPoP", "proof")
			r = r.WithContext(runtimeid.NewContext(r.Context(), ev))
			sent := r.Header.Clone()

			var got http.Header
			var info *auth.TokenInfo
			next := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				got = r.Header.Clone()
				info = auth.TokenInfoFromContext(r.Context())
			})
			w := httptest.NewRecorder()
			withTokenInfo(next).ServeHTTP(w, asBearer(r, ev))

			if tt.scheme == "Bearer" {
				// A bearer request is shown to the SDK as is.
				assert.Same(t, r, asBearer(r, ev))
			}
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, sent, got)
			assert.Equal(t, sent, r.Header)
			require.NotNil(t, info)
			assert.Equal(t, `"iss" "alice" "alice"`, info.UserID)
		})
	}
}

// TestUserIDIsUnambiguous: identities whose parts differ only in where
// the spaces fall get different session owners.
func TestUserIDIsUnambiguous(t *testing.T) {
	a := &runtimeid.Identity{Issuer: "iss", Subject: "b c",
		Actor: &runtimeid.Actor{Subject: "d"}}
	b := &runtimeid.Identity{Issuer: "iss", Subject: "b",
		Actor: &runtimeid.Actor{Subject: "c d"}}
	assert.Equal(t, `"iss" "b c" "d"`, userID(a))
	assert.Equal(t, `"iss" "b" "c d"`, userID(b))
	assert.NotEqual(t, userID(a), userID(b))
}

// panicky is a policy that panics for every action but the protocol.
type panicky struct{}

func (panicky) Decide(_ context.Context, ev *runtimeid.Evaluation) (runtimeid.Decision, error) {
	if ev.Action.Name != DefaultProtocol {
		panic("policy bug")
	}
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default"}, nil
}

// TestListHidesToolsOfAPanickingPolicy: a policy's panic hides the
// tool instead of ending the server.
func TestListHidesToolsOfAPanickingPolicy(t *testing.T) {
	a := newAdapter(t, Options{})
	a.opts.Policy = panicky{}
	list, err := session(t, a).ListTools(context.Background(), nil)
	require.NoError(t, err)
	assert.Empty(t, list.Tools)
}

// TestHostTokenFailureRefuses: a host that cannot give a token, by an
// error or a panic, refuses the call with token_missing, even where
// the engine skips authentication.
func TestHostTokenFailureRefuses(t *testing.T) {
	tests := []struct {
		name  string
		token func(context.Context) (string, error)
	}{
		{"error", func(context.Context) (string, error) { return "", io.EOF }},
		{"panic", func(context.Context) (string, error) { panic("host bug") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Without a token not even initialize is answered.
			_, err := dial(t, testServer(newAdapter(t, Options{Token: tt.token})))
			var re *jsonrpc.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, int64(CodeBlocked), re.Code)
			assert.Equal(t, "runtimeid: blocked: token_missing", re.Message)
		})
	}
}

// TestMiddlewareUnknownCallParams: a tools/call whose params are not
// the SDK's raw call params (another middleware rewrote the request)
// is refused, never passed on unevaluated.
func TestMiddlewareUnknownCallParams(t *testing.T) {
	a := newAdapter(t, Options{})
	reached := false
	next := func(context.Context, string, sdk.Request) (sdk.Result, error) {
		reached = true
		return &sdk.CallToolResult{}, nil
	}
	req := &sdk.ServerRequest[*sdk.CallToolParams]{
		Params: &sdk.CallToolParams{Name: "drop"}}
	res, err := a.Middleware()(next)(context.Background(), "tools/call", req)
	assert.False(t, reached, "the tool ran unevaluated")
	assert.Nil(t, res)
	var re *jsonrpc.Error
	require.ErrorAs(t, err, &re)
	assert.EqualValues(t, CodeBlocked, re.Code)
}
