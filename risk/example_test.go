package risk_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/risk"
)

func Example() {
	ctx := context.Background()
	store, err := risk.NewLRUStore(100_000)
	if err != nil {
		panic(err)
	}
	e, err := risk.NewEvaluator(store, risk.Options{})
	if err != nil {
		panic(err)
	}

	// Alice signs in from London; the engine allows it and calls Learn.
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	alice := &runtimeid.Identity{Subject: "alice"}
	ev := &runtimeid.Evaluation{Time: t0, Identity: alice}
	ev.Signals.Network = runtimeid.NetworkSignals{
		Country: "GB", Latitude: 51.5074, Longitude: -0.1278, HasLocation: true,
	}
	e.Learn(ctx, ev)

	// Ten minutes later her token is used in Linköping.
	ev = &runtimeid.Evaluation{Time: t0.Add(10 * time.Minute), Identity: alice}
	ev.Signals.Network = runtimeid.NetworkSignals{
		Country: "SE", Latitude: 58.4108, Longitude: 15.6214, HasLocation: true,
	}
	findings, err := e.Assess(ctx, ev)
	if err != nil {
		panic(err)
	}
	for _, f := range findings {
		fmt.Printf("%s %.2f: %s\n", f.Code, f.Weight, f.Detail)
	}
	// Output:
	// new_country 0.35: country SE not seen for this subject
	// impossible_travel 0.90: 1260 km from GB to SE in 10 min: 7559 km/h, limit 1000 km/h
}

// places is a collector that geolocates by the action's "city"
// attribute, standing in for the signals package.
type places map[string]runtimeid.NetworkSignals

func (p places) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	city, _ := ev.Action.Attributes["city"].(string)
	ev.Signals.Network = p[city]
	return nil
}

// blockTravel blocks impossible travel and allows everything else.
type blockTravel struct{}

func (blockTravel) Decide(_ context.Context, ev *runtimeid.Evaluation) (runtimeid.Decision, error) {
	if ev.Assessment.Has(risk.CodeImpossibleTravel) {
		return runtimeid.Decision{Outcome: runtimeid.Block, Rule: "travel"}, nil
	}
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default"}, nil
}

// TestEngine runs the evaluator inside the engine: a blocked request
// teaches the baseline nothing.
func TestEngine(t *testing.T) {
	ctx := context.Background()
	e, err := risk.NewEvaluator(risk.NewMemoryStore(), risk.Options{})
	require.NoError(t, err)

	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	engine, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{InsecureSkipAuthentication: true},
		Collectors: []runtimeid.SignalCollector{places{
			"London":    {Country: "GB", Latitude: 51.5074, Longitude: -0.1278, HasLocation: true},
			"Linköping": {Country: "SE", Latitude: 58.4108, Longitude: 15.6214, HasLocation: true},
		}},
		Evaluators: []runtimeid.RiskEvaluator{e},
		Policy:     blockTravel{},
		Now:        func() time.Time { return now },
	})
	require.NoError(t, err)

	steps := []struct {
		after   time.Duration
		city    string
		outcome runtimeid.Outcome
		codes   []string
	}{
		{0, "London", runtimeid.Allow, []string{risk.CodeFirstSeen}},
		{10 * time.Minute, "Linköping", runtimeid.Block,
			[]string{risk.CodeNewCountry, risk.CodeImpossibleTravel}},
		// Linköping was not learned: London is still home.
		{10 * time.Minute, "London", runtimeid.Allow, []string{}},
		{10 * time.Minute, "Linköping", runtimeid.Block,
			[]string{risk.CodeNewCountry, risk.CodeImpossibleTravel}},
	}
	for i, s := range steps {
		now = now.Add(s.after)
		ev, err := engine.Evaluate(ctx, runtimeid.Input{
			Identity: &runtimeid.Identity{Subject: "alice"},
			Action: runtimeid.Action{Name: "read",
				Attributes: map[string]any{"city": s.city}},
		})
		require.NoError(t, err, i)
		assert.Equal(t, s.outcome, ev.Decision.Outcome, i)
		assert.Equal(t, s.codes, ev.Assessment.Codes(), i)
	}
}
