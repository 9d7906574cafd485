package ssf_test

import (
	"fmt"

	"github.com/runtimeid/runtimeid/signals/ssf"
)

// ExampleParsePayload decodes the claims of a CAEP session-revoked SET.
func ExampleParsePayload() {
	set, err := ssf.ParsePayload([]byte(`{
		"iss": "https://idp.example.com/", "jti": "24c63fb5", "iat": 1615305159,
		"aud": "https://sp.example.com/caep",
		"sub_id": {"format": "opaque", "id": "session-1"},
		"events": {
			"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
				"event_timestamp": 1615304991
			}
		}
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := set.Events[0]
	fmt.Println(ev.Type == ssf.CAEPSessionRevoked, ev.Subject.ID, ev.Time.Unix())
	// Output: true session-1 1615304991
}
