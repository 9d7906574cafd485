package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// redisAddr is the test Redis: RUNTIMEID_REDIS_ADDR, as .ci/run starts it.
func redisAddr(t *testing.T) string {
	addr := os.Getenv("RUNTIMEID_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis at %s does not answer: %v", addr, err)
		}
		t.Skipf("no redis at %s (set RUNTIMEID_REDIS_ADDR): %v", addr, err)
	}
	return addr
}

// TestQuickstartsShareRedis runs two quickstart services with the same
// -redis and -ssf-* settings: a session revoked through one is refused
// by the other.
func TestQuickstartsShareRedis(t *testing.T) {
	addr := redisAddr(t)
	iss, err := newIssuer(demoIssuer, demoAudience)
	require.NoError(t, err)
	keys, err := runtimeid.StaticKeys(iss.public)
	require.NoError(t, err)
	idp, err := newIssuer(demoSSFIssuer, demoSSFAudience)
	require.NoError(t, err)
	idpKeys, err := runtimeid.StaticKeys(idp.public)
	require.NoError(t, err)

	o := options{issuer: demoIssuer, audience: demoAudience, redis: addr,
		ssfIssuer: demoSSFIssuer, ssfAudience: demoSSFAudience, ssfKeys: idpKeys}
	start := func() *httptest.Server {
		svc, err := newService(context.Background(), o, keys, time.Now, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		srv := httptest.NewServer(svc.handler)
		t.Cleanup(func() { srv.Close(); svc.Close() })
		return srv
	}
	a, b := start(), start()

	// Other tests share this Redis, and revocations outlive a run: a
	// session of its own for every run.
	sid := "alice-" + newJTI()
	now := time.Now()
	token, err := iss.mint(grant{sub: "alice", sid: sid, issued: now, authTime: now})
	require.NoError(t, err)
	get := func(srv *httptest.Server) int {
		req, _ := http.NewRequest("GET", srv.URL+"/api/orders", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 200, get(a))
	require.Equal(t, 200, get(b))

	// The identity provider pushes session-revoked to instance A only.
	tr, err := ssf.NewTransmitter(ssf.TransmitterOptions{Issuer: demoSSFIssuer,
		Audience: demoSSFAudience, Key: idp.key, PushURL: a.URL + "/ssf/events"})
	require.NoError(t, err)
	defer tr.Close()
	user, session := ssf.IssSub(demoIssuer, "alice"), ssf.Opaque(sid)
	set, err := tr.Sign(ssf.SessionRevokedEvent(
		ssf.SubjectID{Format: ssf.FormatComplex, User: &user, Session: &session}, time.Now(), "test"))
	require.NoError(t, err)
	resp, err := http.Post(a.URL+"/ssf/events", "application/secevent+jwt", bytes.NewReader(set))
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	assert.Equal(t, 401, get(a))
	// B hears of it through Redis pub/sub: poll against a deadline.
	deadline := time.Now().Add(2 * time.Second)
	status := get(b)
	for status != 401 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		status = get(b)
	}
	assert.Equal(t, 401, status, "instance B refuses the session revoked through A")
}

// TestRedisFlagUnreachable: a -redis that does not answer is a start-up
// error, not a silent fallback.
func TestRedisFlagUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	iss, err := newIssuer(demoIssuer, demoAudience)
	require.NoError(t, err)
	keys, err := runtimeid.StaticKeys(iss.public)
	require.NoError(t, err)
	_, err = newService(context.Background(), options{issuer: demoIssuer, audience: demoAudience,
		redis: addr}, keys, time.Now, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-redis "+addr)
}

// TestQuickstartsShareSessions runs two quickstart services on one
// Redis: a token used on A and replayed on B from another device is
// token_replay on B.
func TestQuickstartsShareSessions(t *testing.T) {
	addr := redisAddr(t)
	iss, err := newIssuer(demoIssuer, demoAudience)
	require.NoError(t, err)
	keys, err := runtimeid.StaticKeys(iss.public)
	require.NoError(t, err)
	o := options{issuer: demoIssuer, audience: demoAudience, redis: addr}
	start := func() (*httptest.Server, *service) {
		svc, err := newService(context.Background(), o, keys, time.Now,
			slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		srv := httptest.NewServer(svc.handler)
		t.Cleanup(func() { srv.Close(); svc.Close() })
		return srv, svc
	}
	a, _ := start()
	b, svcB := start()

	now := time.Now()
	sub, sid := "alice-"+newJTI(), "s-"+newJTI()
	token, err := iss.mint(grant{sub: sub, sid: sid, issued: now, authTime: now})
	require.NoError(t, err)
	get := func(srv *httptest.Server, ua string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/api/orders", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("User-Agent", ua)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate") + string(body)
	}
	const (
		chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 " +
			"(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
		firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) " +
			"Gecko/20100101 Firefox/123.0"
	)
	status, _ := get(a, chrome)
	require.Equal(t, 200, status)

	// B hears of the session's and the token's use through Redis (pub/sub,
	// or a read back after a miss): wait for both, against a deadline. A
	// request sent to B before then would be allowed and become the
	// latest use B knows, as it would in production.
	var claims struct{ JTI string }
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(payload, &claims))
	known := func(kind, id string) bool {
		_, ok := svcB.shared.Sessions().Lookup(kind, risk.SharedSessionKey(sub, id))
		return ok
	}
	deadline := time.Now().Add(5 * time.Second)
	for !(known(risk.SessionKindSID, sid) && known(risk.SessionKindJTI, claims.JTI)) {
		require.True(t, time.Now().Before(deadline), "B never learned A's use")
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for correctness
	}
	status, got := get(b, firefox)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, got, `"code":"token_theft"`)
}
