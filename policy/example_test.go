package policy_test

import (
	"context"
	"fmt"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/policy"
)

func ExampleParse() {
	p, err := policy.Parse([]byte(`
version: 1
rules:
  - name: block-tor
    when: signals.network.tor
    outcome: block
    reason: anonymous_network
`), "example.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := &runtimeid.Evaluation{}
	ev.Signals.Network.Tor = true
	d, err := p.Decide(context.Background(), ev)
	fmt.Println(d.Outcome, d.Rule, d.Reason, err)
	// Output: block block-tor anonymous_network <nil>
}

func ExampleParse_error() {
	_, err := policy.Parse([]byte(`
version: 1
rules:
  - name: typo
    when: signals.network.contry == "FR"
    outcome: block
`), "example.yaml")
	fmt.Println(err)
	// Output: policy: example.yaml:5: rules[0] "typo": when: 1:16: undefined field 'contry'
}
