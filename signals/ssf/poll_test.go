package ssf

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pollServer is a transmitter's RFC 8936 endpoint on loopback: it
// hands out its queue and records every poll.
type pollServer struct {
	srv *httptest.Server

	mu     sync.Mutex
	queue  map[string]string
	polls  []pollRequest
	auth   []string
	status []int // answers before the normal one, such as 500
}

func newPollServer(t *testing.T) *pollServer {
	ps := &pollServer{queue: map[string]string{}}
	ps.srv = httptest.NewServer(http.HandlerFunc(ps.serve))
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *pollServer) serve(w http.ResponseWriter, r *http.Request) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var req pollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ps.polls = append(ps.polls, req)
	ps.auth = append(ps.auth, r.Header.Get("Authorization"))
	if len(ps.status) > 0 {
		code := ps.status[0]
		ps.status = ps.status[1:]
		w.WriteHeader(code)
		return
	}
	for _, jti := range req.Ack {
		delete(ps.queue, jti)
	}
	for jti := range req.SetErrs {
		delete(ps.queue, jti)
	}
	sets := map[string]string{}
	for jti, set := range ps.queue {
		if len(sets) < req.MaxEvents {
			sets[jti] = set
		}
	}
	json.NewEncoder(w).Encode(pollResponse{Sets: sets, MoreAvailable: len(ps.queue) > len(sets)})
}

func newTestPoller(t *testing.T, ps *pollServer, r *Receiver, edit func(*PollOptions)) *Poller {
	opts := PollOptions{Endpoint: ps.srv.URL + "/poll", Receiver: r,
		AuthorizationToken: "poll-secret", Client: ps.srv.Client(), MaxEvents: 2}
	if edit != nil {
		edit(&opts)
	}
	p, err := NewPoller(opts)
	require.NoError(t, err)
	return p
}

func TestPollerAcknowledges(t *testing.T) {
	s := newSigner(t, "k1")
	r := newTestReceiver(t, s, nil)
	ps := newPollServer(t)
	bad := claims("j2", RISCAccountDisabled, IssSub(tokIssuer, "bob"), nil)
	bad["iss"] = "https://evil.example/"
	ps.queue["j1"] = string(s.sign(t, "", claims("j1", RISCAccountDisabled, IssSub(tokIssuer, "alice"), nil)))
	ps.queue["j2"] = string(s.sign(t, "", bad))
	ps.queue["j3"] = string(s.sign(t, "", claims("j3", CAEPCredentialChange, IssSub(tokIssuer, "carol"), nil)))
	p := newTestPoller(t, ps, r, nil)
	ctx := context.Background()

	n, more, err := p.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.True(t, more)

	n, more, err = p.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.False(t, more)

	n, _, err = p.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n)

	// Every SET was acknowledged or reported exactly once.
	acked := map[string]bool{}
	errs := map[string]errorBody{}
	for _, pr := range ps.polls {
		assert.Equal(t, 2, pr.MaxEvents)
		assert.False(t, pr.ReturnImmediately)
		for _, j := range pr.Ack {
			assert.False(t, acked[j], "acked twice: %s", j)
			acked[j] = true
		}
		for j, e := range pr.SetErrs {
			errs[j] = e
		}
	}
	assert.Equal(t, map[string]bool{"j1": true, "j3": true}, acked)
	assert.Equal(t, map[string]errorBody{"j2": {Err: CodeInvalidIssuer, Description: "issuer not accepted"}}, errs)
	assert.Empty(t, ps.queue)
	assert.Equal(t, "Bearer poll-secret", ps.auth[0])

	assert.Equal(t, ReasonAccountDisabled, validate(t, r.opts.State, identity("alice", "", t0)))
	assert.Equal(t, ReasonCredentialChanged, validate(t, r.opts.State, identity("carol", "", t0)))
	assert.Equal(t, "", validate(t, r.opts.State, identity("bob", "", t0)))
}

func TestPollerBacksOffAndStops(t *testing.T) {
	s := newSigner(t, "k1")
	r := newTestReceiver(t, s, nil)
	ps := newPollServer(t)
	ps.status = []int{500, 502, 503, 500}
	ps.queue["j1"] = string(s.sign(t, "", claims("j1", RISCAccountDisabled, IssSub(tokIssuer, "alice"), nil)))

	var waits []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	p := newTestPoller(t, ps, r, func(o *PollOptions) {
		o.MinBackoff, o.MaxBackoff = time.Second, 5*time.Second
		o.Interval = 7 * time.Second
		o.Wait = func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			if d == 7*time.Second {
				cancel() // idle: the queue is drained
			}
			return ctx.Err()
		}
	})
	require.NoError(t, p.Run(ctx))

	// Four failures back off 1s, 2s, 4s, 5s (capped); then the SET,
	// then a poll that acknowledges it and finds nothing: wait Interval.
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second,
		5 * time.Second, 7 * time.Second}, waits)
	assert.Equal(t, ReasonAccountDisabled, validate(t, r.opts.State, identity("alice", "", t0)))
	assert.Empty(t, ps.queue)
}

func TestPollerClose(t *testing.T) {
	r := newTestReceiver(t, newSigner(t, "k1"), nil)
	ps := newPollServer(t)
	p := newTestPoller(t, ps, r, func(o *PollOptions) { o.Interval = time.Hour })
	done := make(chan error)
	go func() { done <- p.Run(context.Background()) }()
	require.NoError(t, p.Close())
	require.NoError(t, <-done)
	require.NoError(t, p.Close(), "twice")
}

func TestNewPollerErrors(t *testing.T) {
	r := newTestReceiver(t, newSigner(t, "k1"), nil)
	for _, u := range []string{"http://idp.example/poll", "ftp://127.0.0.1/", "::"} {
		_, err := NewPoller(PollOptions{Endpoint: u, Receiver: r})
		assert.ErrorIs(t, err, ErrOptions, u)
	}
	_, err := NewPoller(PollOptions{Endpoint: "https://idp.example/poll"})
	assert.ErrorIs(t, err, ErrOptions)
	_, err = NewPoller(PollOptions{Endpoint: "http://127.0.0.1:1/poll", Receiver: r})
	assert.NoError(t, err)
}
