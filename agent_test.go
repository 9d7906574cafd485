package runtimeid

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestActorChainAndActingSubject(t *testing.T) {
	agent := &Actor{Subject: "agent-7", ClientID: "bot",
		Actor: &Actor{Subject: "planner"}}
	tests := []struct {
		name   string
		id     *Identity
		chain  []string
		acting string
	}{
		{"nil", nil, nil, ""},
		{"human", &Identity{Subject: "alice"}, nil, "alice"},
		{"agent", &Identity{Subject: "alice", Actor: agent},
			[]string{"agent-7", "planner"}, "agent-7"},
		{"client only", &Identity{Subject: "alice",
			Actor: &Actor{ClientID: "bot"}}, []string{""}, "bot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range tt.id.ActorChain() {
				got = append(got, a.Subject)
			}
			assert.Equal(t, tt.chain, got)
			assert.Equal(t, tt.acting, tt.id.ActingSubject())
		})
	}
}

type usageLog struct{ got []Usage }

func (l *usageLog) RecordUsage(_ context.Context, _ *Evaluation, u Usage) {
	l.got = append(l.got, u)
}

func TestReportUsage(t *testing.T) {
	var rec usageLog
	allowed := &Evaluation{Decision: Decision{Outcome: Allow}}
	blocked := &Evaluation{Decision: Decision{Outcome: Block}}
	bg := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		ok   bool
	}{
		{"no recorder", NewContext(bg, allowed), false},
		{"no evaluation", WithUsageRecorder(bg, &rec), false},
		{"blocked", WithUsageRecorder(NewContext(bg, blocked), &rec), false},
		{"allowed", WithUsageRecorder(NewContext(bg, allowed), &rec), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := ReportUsage(tt.ctx, Usage{Records: 3, Bytes: -5})
			assert.Equal(t, tt.ok, ok)
		})
	}
	assert.Equal(t, []Usage{{Records: 3, Bytes: 0}}, rec.got)
}

func TestUsageRecordingMiddleware(t *testing.T) {
	var rec usageLog
	e, _ := newTestEngine(t, Config{})
	h := e.Protect("export", High)(UsageRecording(&rec)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			ReportUsage(r.Context(), Usage{Records: 7, Bytes: 70})
		})))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	assert.Equal(t, []Usage{{Records: 7, Bytes: 70}}, rec.got)
}

// approvalStack is an engine whose policy challenges every delegated
// action, answerable only by a human approval.
type approvalStack struct {
	engine *Engine
	store  *Approvals
	now    time.Time
}

func newApprovalStack(t *testing.T) *approvalStack {
	s := &approvalStack{now: t0}
	clock := func() time.Time { return s.now }
	store, err := NewApprovals(ApprovalsOptions{
		Now: clock, Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 64)),
	})
	require.NoError(t, err)
	s.store = store
	challenge := policyFunc(func(ev *Evaluation) (Decision, error) {
		if ev.Identity.IsDelegated() {
			return Decision{Outcome: Challenge, Rule: "agent", Reason: "agent_action",
				StepUp: &StepUp{ACRValues: []string{ApprovalACR}}}, nil
		}
		return Decision{Outcome: Allow, Rule: "default"}, nil
	})
	s.engine, _ = newTestEngine(t, Config{Policy: challenge, StepUps: store})
	s.engine.now = clock
	return s
}

func agentIdentity() *Identity {
	return &Identity{Subject: "alice", Issuer: "https://idp", SessionID: "s1",
		Actor: &Actor{Subject: "agent-7", ClientID: "bot"}}
}

func (s *approvalStack) evaluate(t *testing.T, action, approval string) *Evaluation {
	ctx := context.Background()
	if approval != "" {
		ctx = WithApprovalRef(ctx, ApprovalRef{ID: approval, Action: action})
	}
	ev, err := s.engine.Evaluate(ctx, Input{Identity: agentIdentity(),
		Action: Action{Name: action, Sensitivity: High}})
	require.NoError(t, err)
	return ev
}

func TestApprovalFlow(t *testing.T) {
	s := newApprovalStack(t)
	ev := s.evaluate(t, "export", "")
	require.Equal(t, Challenge, ev.Decision.Outcome)

	ap, err := s.store.RequestApproval(context.Background(), ev)
	require.NoError(t, err)
	assert.Equal(t, "apr_abababababababababababababababab", ap.ID)
	assert.Equal(t, Approval{ID: ap.ID, Subject: "alice", Issuer: "https://idp",
		Actor: "agent-7", ClientID: "bot", SessionID: "s1", Action: "export",
		Reason: "agent_action", Created: t0, Expires: t0.Add(5 * time.Minute)}, ap)

	// Not yet approved: the retry is still challenged.
	assert.Equal(t, Challenge, s.evaluate(t, "export", ap.ID).Decision.Outcome)

	// Only alice herself may decide.
	human := &Identity{Subject: "alice", Issuer: "https://idp"}
	assert.ErrorIs(t, s.store.Approve(context.Background(), ap.ID, agentIdentity()),
		ErrApprovalForbidden)
	assert.ErrorIs(t, s.store.Approve(context.Background(), ap.ID, &Identity{Subject: "bob",
		Issuer: "https://idp"}), ErrApprovalForbidden)
	assert.ErrorIs(t, s.store.Approve(context.Background(), "apr_x", human), ErrApprovalNotFound)
	s.now = t0.Add(time.Minute)
	require.NoError(t, s.store.Approve(context.Background(), ap.ID, human))
	assert.ErrorIs(t, s.store.Deny(context.Background(), ap.ID, human), ErrApprovalClosed)

	// An approval is for one action only.
	assert.Equal(t, Challenge, s.evaluate(t, "transfer", ap.ID).Decision.Outcome)

	got := s.evaluate(t, "export", ap.ID)
	assert.Equal(t, Allow, got.Decision.Outcome)
	assert.True(t, got.Decision.SteppedUp)

	// Single use.
	assert.Equal(t, Challenge, s.evaluate(t, "export", ap.ID).Decision.Outcome)
	stored, _, _ := s.store.Get(context.Background(), ap.ID)
	assert.Equal(t, ApprovalUsed, stored.State)
}

func TestApprovalExpires(t *testing.T) {
	s := newApprovalStack(t)
	ap, err := s.store.RequestApproval(context.Background(), s.evaluate(t, "export", ""))
	require.NoError(t, err)
	human := &Identity{Subject: "alice", Issuer: "https://idp"}
	require.NoError(t, s.store.Approve(context.Background(), ap.ID, human))
	s.now = t0.Add(5 * time.Minute)
	assert.Equal(t, Challenge, s.evaluate(t, "export", ap.ID).Decision.Outcome)
}

func TestRequestApprovalNotApplicable(t *testing.T) {
	s := newApprovalStack(t)
	human, err := s.engine.Evaluate(context.Background(),
		Input{Identity: &Identity{Subject: "alice"}})
	require.NoError(t, err)
	_, err = s.store.RequestApproval(context.Background(), human)
	assert.ErrorIs(t, err, ErrApprovalNotApplicable)
}

func TestApprovalHandler(t *testing.T) {
	s := newApprovalStack(t)
	ap, err := s.store.RequestApproval(context.Background(), s.evaluate(t, "export", ""))
	require.NoError(t, err)

	serve := func(id *Identity, method, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/approvals", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		ev := &Evaluation{Identity: id, Decision: Decision{Outcome: Allow}}
		r = r.WithContext(NewContext(r.Context(), ev))
		w := httptest.NewRecorder()
		s.store.Handler().ServeHTTP(w, r)
		return w
	}
	human := &Identity{Subject: "alice", Issuer: "https://idp"}
	form := url.Values{"id": {ap.ID}, "decision": {"approve"}}.Encode()

	w := serve(human, "GET", "")
	require.Equal(t, http.StatusOK, w.Code)
	var pending []Approval
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &pending))
	require.Len(t, pending, 1)
	assert.Equal(t, ap.ID, pending[0].ID)

	tests := []struct {
		name   string
		id     *Identity
		method string
		body   string
		status int
	}{
		{"no identity", nil, "POST", form, http.StatusForbidden},
		{"the agent", agentIdentity(), "POST", form, http.StatusForbidden},
		{"bad decision", human, "POST", "id=" + ap.ID + "&decision=maybe", 400},
		{"unknown", human, "POST", "id=x&decision=deny", http.StatusNotFound},
		{"put", human, "PUT", form, http.StatusMethodNotAllowed},
		{"approve", human, "POST", form, http.StatusOK},
		{"again", human, "POST", form, http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.status, serve(tt.id, tt.method, tt.body).Code)
		})
	}
	got, _, _ := s.store.Get(context.Background(), ap.ID)
	assert.Equal(t, ApprovalApproved, got.State)
}

func TestNewApprovalsRejectsNegative(t *testing.T) {
	_, err := NewApprovals(ApprovalsOptions{TTL: -1})
	assert.ErrorIs(t, err, ErrConfig)
}
