package stepup

import (
	"testing"
	"time"

	"github.com/runtimeid/runtimeid"
)

// BenchmarkStepUp is the cost the engine pays on a challenged request:
// one store read, one AES-GCM open, one JSON decode.
func BenchmarkStepUp(b *testing.B) {
	h := newHarness(&testing.T{})
	id := &runtimeid.Identity{Issuer: testIssuer, Subject: "alice", SessionID: "s1"}
	rec := Record{ACR: ACROTP, Method: "otp", Time: h.clock.Now(), Device: "otp"}
	if err := h.svc.record(b.Context(), id, rec); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := h.svc.StepUp(b.Context(), id, nil); !ok {
			b.Fatal("no step-up")
		}
	}
}

// BenchmarkVerifyOTP is one code checked and recorded, through HTTP.
func BenchmarkVerifyOTP(b *testing.B) {
	t := &testing.T{}
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	b.ReportAllocs()
	for b.Loop() {
		h.clock.Add(30 * time.Second)
		tok = h.token("alice", "s1", 0)
		w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": h.code(secret)})
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
