package policy

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
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

// program compiles one when expression into a program with a cost limit.
func program(env *cel.Env, expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("required")
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, compileError(iss.Errors())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("has type %s, want bool"+
			" (compare a dynamic value explicitly, as in x == true)", t)
	}
	return env.Program(ast,
		cel.CostLimit(RuleCostLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
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
