package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	redisstore "github.com/runtimeid/runtimeid/adapters/redis"
	"github.com/runtimeid/runtimeid/adapters/stepup"
)

// TestStepUpAttemptsShareRedis: two step-up services sharing one Redis
// store count failed codes together: of many concurrent wrong codes
// sent to both, exactly MaxAttempts are checked and the rest wait.
func TestStepUpAttemptsShareRedis(t *testing.T) {
	addr := redisAddr(t)
	iss, err := newIssuer(demoIssuer, demoAudience)
	require.NoError(t, err)
	keys, err := runtimeid.StaticKeys(iss.public)
	require.NoError(t, err)
	tok := runtimeid.TokenConfig{Issuer: demoIssuer, Audience: []string{demoAudience},
		Keys: keys}
	prefix := "test:" + newJTI() + ":"      // other runs share this Redis
	now := time.Now().Truncate(time.Second) // both services' clock
	sealKey := []stepup.EncryptionKey{{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}}
	start := func() http.Handler {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		shared, err := redisstore.New(context.Background(),
			redisstore.Options{Client: c, Prefix: prefix, Timeout: 10 * time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { shared.Close(context.Background()) })
		svc, err := stepup.New(stepup.Options{Token: tok, EncryptionKeys: sealKey,
			Store: shared.Secrets(), Now: func() time.Time { return now }})
		require.NoError(t, err)
		return svc.Handler()
	}
	a, b := start(), start()

	token, err := iss.mint(grant{sub: "alice", sid: newJTI(), issued: now, authTime: now})
	require.NoError(t, err)
	post := func(h http.Handler, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	// Enroll a code secret through A; B reads it from Redis.
	w := post(a, "/stepup/enroll/otp", "{}")
	require.Equal(t, 200, w.Code, w.Body.String())
	var e stepup.OTPEnrollment
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
	code, err := totp.GenerateCode(e.Secret, now)
	require.NoError(t, err)
	w = post(b, "/stepup/enroll/otp/confirm", `{"code":"`+code+`"}`)
	require.Equal(t, 200, w.Code, w.Body.String())
	// A wrong code is none of the three the ±1 step window accepts.
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, err := totp.GenerateCode(e.Secret, now.Add(d))
		require.NoError(t, err)
		valid[c] = true
	}
	wrong := "000000"
	for i := 1; valid[wrong]; i++ {
		wrong = fmt.Sprintf("%06d", i)
	}

	const n = 16
	got := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		h := a
		if i%2 == 1 {
			h = b
		}
		wg.Go(func() {
			got[i] = post(h, "/stepup/otp/verify", `{"code":"`+wrong+`"}`).Code
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range got {
		count[c]++
	}
	assert.Equal(t, map[int]int{403: stepup.DefaultMaxAttempts,
		429: n - stepup.DefaultMaxAttempts}, count)

	// Locked out on both: even the right code waits.
	code, err = totp.GenerateCode(e.Secret, now)
	require.NoError(t, err)
	for _, h := range []http.Handler{a, b} {
		w = post(h, "/stepup/otp/verify", `{"code":"`+code+`"}`)
		assert.Equal(t, 429, w.Code)
		assert.Equal(t, "30", w.Header().Get("Retry-After"))
	}
}
