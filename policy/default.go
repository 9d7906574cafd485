package policy

import (
	_ "embed"
	"sync"
)

// DefaultYAML is the source of the [Default] policy, commented rule by
// rule: a starting point to copy into a file and adapt. Do not modify it.
//
//go:embed default.yaml
var DefaultYAML []byte

var defaultPolicy = sync.OnceValue(func() *Policy {
	p, err := Parse(DefaultYAML, "default.yaml")
	if err != nil {
		// The tests parse it; only a broken build gets here.
		panic(err)
	}
	return p
})

// Default returns the policy of [DefaultYAML]. It blocks high-sensitivity
// actions from anonymous networks, impossible travel and bots on
// anything but low-sensitivity actions, and challenges high-sensitivity
// actions without a login in the last 5 minutes or from a new device,
// and every action with high risk; it allows the rest. Every call returns
// the same immutable policy.
func Default() *Policy { return defaultPolicy() }
