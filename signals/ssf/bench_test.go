package ssf

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkValidate is the hot path: an identity with a sid and an
// email, looked up in a state holding 10,000 revocations of others.
func BenchmarkValidate(b *testing.B) {
	st := NewState(StateOptions{})
	for i := range 10_000 {
		_ = st.Update(Key{Kind: KindIssSub, Issuer: tokIssuer, ID: fmt.Sprint("u", i)}, t0,
			func(f *Facts) { f.Blocked = ReasonAccountDisabled })
	}
	v := NewValidator(st)
	ev := evaluation(identity("alice", "s-1", t0))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := v.Validate(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAssess(b *testing.B) {
	st := NewState(StateOptions{})
	e := NewEvaluator(st)
	ev := evaluation(identity("alice", "s-1", t0))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = e.Assess(ctx, ev)
	}
}
