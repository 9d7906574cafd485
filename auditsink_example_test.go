package runtimeid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	var lines bytes.Buffer // a file, in a deployment
	sink := runtimeid.NewJSONLinesSink(&lines, runtimeid.JSONLinesOptions{})
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

	var event map[string]any
	if err := json.Unmarshal(lines.Bytes(), &event); err != nil {
		panic(err)
	}
	fmt.Println(event["msg"], event["outcome"], event["action"], event["sub"])
	fmt.Printf("%+v\n", queue.Stats())
	// Output:
	// runtimeid.decision allow orders.list alice
	// {Written:1 Dropped:0 Failed:0 Blocked:0}
}
