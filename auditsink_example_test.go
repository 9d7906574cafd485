package runtimeid_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/runtimeid/runtimeid"
)

// allowAll is a policy that allows everything.
type allowAll struct{}

func (allowAll) Decide(context.Context, *runtimeid.Evaluation) (runtimeid.Decision, error) {
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default",
		Reason: "default"}, nil
}

// The audit events of an engine go through a queue to JSON lines; Close
// writes what is still queued.
func ExampleNewAuditQueue() {
	sink := runtimeid.NewJSONLinesSink(os.Stdout, runtimeid.JSONLinesOptions{})
	queue, err := runtimeid.NewAuditQueue(runtimeid.AuditQueueOptions{
		Writer: sink,
	})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	eng, err := runtimeid.New(runtimeid.Config{
		Token:  runtimeid.TokenConfig{InsecureSkipAuthentication: true},
		Policy: allowAll{},
		Audit:  queue,
		Now:    func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}

	_, _ = eng.Evaluate(context.Background(), runtimeid.Input{
		Identity: &runtimeid.Identity{Subject: "alice", SessionID: "s1"},
		Action:   runtimeid.Action{Name: "orders.list"},
	})
	_ = queue.Close()
	fmt.Printf("%+v\n", queue.Stats())
	// Output:
	// {"time":"2026-12-04T12:00:00Z","level":"INFO","msg":"runtimeid.decision","outcome":"allow","rule":"default","reason":"default","score":0,"risk_level":"low","findings":[],"action":"orders.list","sensitivity":"medium","sub":"alice","sid":"s1","elapsed":0}
	// {Written:1 Dropped:0 Failed:0 Blocked:0}
}
