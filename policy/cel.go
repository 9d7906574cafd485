package policy

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/cost"

	"github.com/runtimeid/runtimeid"
)

// environment is the one CEL environment every policy compiles in. It is
// safe for concurrent use and costly to build, so it is built once.
var environment = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		objectTypes(),
		cel.Variable("identity", identityObject.typ),
		cel.Variable("action", actionObject.typ),
		cel.Variable("signals", signalsObject.typ),
		cel.Variable("risk", riskObject.typ),
		cel.Variable("now", cel.TimestampType),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(MaxExpressionSize),
	)
})

// objectTypes adds the read-only object types of the variables to the
// environment's type provider and adapter.
func objectTypes() cel.EnvOption {
	return func(env *cel.Env) (*cel.Env, error) {
		a := adapter{env.CELTypeAdapter()}
		env, err := cel.CustomTypeAdapter(a)(env)
		if err != nil {
			return nil, err
		}
		return cel.CustomTypeProvider(provider{env.CELTypeProvider()})(env)
	}
}

// program compiles one when expression into a program with a cost
// limit. It also returns fast, the same program without cost tracking,
// when the expression can never reach [RuleCostLimit] on an evaluation
// whose lists are within [boundedListLen] (see [withinBounds]); fast is
// nil otherwise. Tracking costs about four allocations per rule and
// request, which is most of the policy's allocations.
func program(env *cel.Env, expr string) (prg, fast cel.Program, err error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil, errors.New("required")
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, nil, compileError(iss.Errors())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, nil, fmt.Errorf("has type %s, want bool"+
			" (compare a dynamic value explicitly, as in x == true)", t)
	}
	prg, err = env.Program(ast,
		cel.CostLimit(RuleCostLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, nil, err
	}
	est, err := env.EstimateCost(ast, listBounds{})
	if err != nil || est.Max > RuleCostLimit {
		return prg, nil, nil
	}
	fast, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, err
	}
	return prg, fast, nil
}

// boundedListLen is the length the cost estimate assumes for the lists
// an evaluation brings: the token's aud, scopes and amr, and the risk
// findings. Rules see longer lists only through the tracked program.
const boundedListLen = 64

// listBounds tells CEL's cost estimate the lengths of the lists; every
// other size it leaves unknown, so that a rule whose cost depends on a
// string's length or a map's size is always tracked.
type listBounds struct{}

// EstimateSize implements [cost.Estimator].
func (listBounds) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	switch strings.Join(n.Path(), ".") {
	case "identity.aud", "identity.scopes", "identity.amr",
		"risk.findings", "risk.weights":
		e := cost.RangedSizeEstimate(0, boundedListLen)
		return &e
	}
	return nil
}

// EstimateCallCost implements [cost.Estimator]: CEL's own estimates.
func (listBounds) EstimateCallCost(
	string, string, *cost.AstNode, []cost.AstNode,
) *cost.CallEstimate {
	return nil
}

// withinBounds reports whether ev's lists are no longer than the cost
// estimate assumed, so that the rules' fast programs may run.
func withinBounds(ev *runtimeid.Evaluation) bool {
	if len(ev.Assessment.Findings) > boundedListLen {
		return false
	}
	id := ev.Identity
	return id == nil || len(id.Audience) <= boundedListLen &&
		len(id.Scopes) <= boundedListLen && len(id.AMR) <= boundedListLen
}

// compileError lists CEL's errors with their line:column inside the
// expression, from 1.
func compileError(errs []*common.Error) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msg := e.Message
		if line := e.Location.Line(); line > 0 {
			msg = fmt.Sprintf("%d:%d: %s", line, e.Location.Column()+1, msg)
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "; "))
}
