// Package runtimeid decides, on every request and on every action an agent
// takes for a user, whether that action should be allowed right now.
//
// Login proves who someone was at one moment; a token is then trusted until
// it expires. The [Engine] closes that gap in-process, before the handler
// runs: it verifies the access token, collects signals about this moment
// (network, device, session, the action), scores the risk with reasons,
// applies a policy and allows, challenges (step-up authentication) or
// blocks, with one audit event per decision.
//
// This package is the facade: the engine, its configuration, the
// interfaces of each stage and the per-request types. The stages' standard
// implementations live in the packages named after them: signals, risk,
// policy and decision.
package runtimeid

import (
	"context"
	"net/http"
)

// SignalCollector adds facts about this moment to [Evaluation.Signals].
//
// Collect runs once per evaluation, in the order of [Config.Collectors],
// after the token was verified; it may read what earlier collectors wrote.
// It must be safe for concurrent use, must not keep ev after it returns,
// and should do no I/O: read remote state through a cache refreshed in the
// background. An error or a panic fails the evaluation closed.
type SignalCollector interface {
	Collect(ctx context.Context, ev *Evaluation) error
}

// RiskEvaluator turns signals into findings.
//
// Assess runs once per evaluation, after every collector, in the order of
// [Config.Evaluators]. The engine combines the findings of all evaluators
// into [Assessment.Score]. It must be safe for concurrent use; an error or
// a panic fails the evaluation closed.
type RiskEvaluator interface {
	Assess(ctx context.Context, ev *Evaluation) ([]Finding, error)
}

// Learner is implemented by collectors and evaluators that keep a baseline.
// The engine calls Learn after an evaluation whose final outcome is
// [Allow], and never otherwise, so an attacker who is challenged or blocked
// teaches the baseline nothing. Learn must be safe for concurrent use and
// must not block: slow writes belong in the background.
type Learner interface {
	Learn(ctx context.Context, ev *Evaluation)
}

// PolicyEngine decides the outcome from everything collected.
//
// Decide must be safe for concurrent use. It returns the decision with
// its rule and reason; an error or a panic fails the evaluation closed.
// The engine itself turns a challenge the identity already satisfies into
// an allow, so a policy need not know about step-up.
type PolicyEngine interface {
	Decide(ctx context.Context, ev *Evaluation) (Decision, error)
}

// Enforcer writes the response for an HTTP request that may not proceed.
//
// Enforce is called for every evaluated request. It returns true when the
// handler should run and writes nothing then; otherwise it writes the whole
// response: a 401 for a missing or bad token (ev.Err is a [*TokenError]),
// a step-up challenge or redirect for [Challenge], a 403 for [Block]. It
// must be safe for concurrent use.
type Enforcer interface {
	Enforce(w http.ResponseWriter, r *http.Request, ev *Evaluation) bool
}
