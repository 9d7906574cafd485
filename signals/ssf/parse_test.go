package ssf

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unfold undoes RFC 8792 single-backslash line folding.
var unfold = regexp.MustCompile(`\\\n\s*`)

func readSpec(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "spec", name))
	require.NoError(t, err)
	return unfold.ReplaceAll(data, nil)
}

// TestParseSpecExamples parses every example SET of CAEP 1.0, SSF 1.0
// and RFC 8417. They are unsigned examples, so only the claims are
// checked, with the subject keys they map to.
func TestParseSpecExamples(t *testing.T) {
	const caep, ssf, rfc = "openid-caep-1_0/", "openid-ssf-1_0/", "rfc8417-set-draft13/"
	idp1 := "https://idp.example.com/123456789/"
	tests := []struct {
		file     string
		iss, jti string
		typ      string
		time     int64
		keys     []Key
	}{
		{caep + "03-examples-session-revoked-examples.txt", idp1, "24c63fb56e5a2d77a6b512616ca9fa24",
			CAEPSessionRevoked, 1615304991,
			[]Key{{Kind: KindSession, ID: "dMTlD|1600802906337.16|16008.16"}}},
		{caep + "04-examples-session-revoked-examples.txt", idp1, "24c63fb56e5a2d77a6b512616ca9fa24",
			CAEPSessionRevoked, 1615304991,
			[]Key{{Kind: KindIssSub, Issuer: idp1, ID: "99beb27c-c1c2-4955-882a-e0dc4996fcbc"},
				{Kind: KindSession, ID: "dMTlD|1600802906337.16|16008.16"}}},
		{caep + "05-examples-session-revoked-examples.txt", idp1, "24c63fb56e5a2d77a6b512616ca9fa24",
			CAEPSessionRevoked, 1615304991,
			[]Key{{Kind: KindIssSub, Issuer: idp1, ID: "jane.smith@example.com"},
				{Kind: KindDevice, ID: "e9297990-14d2-42ec-a4a9-4036db86509a"}}},
		{caep + "06-examples-token-claims-change-examples.txt", "https://idp.example.com/987654321/",
			"9afce1e4e642b165fcaacdd0e7aa4903", CAEPTokenClaimsChange, 1615304991,
			[]Key{{Kind: KindToken, Issuer: "https://idp.example.com/987654321/",
				ID: "f61t6e20zdo3px56gepu8rzlsp4c1dpc0fx7"}}},
		{caep + "07-examples-token-claims-change-examples.txt", "https://idp.example.com/987654321/",
			"9afce1e4e642b165fcaacdd0e7aa4903", CAEPTokenClaimsChange, 1615304991,
			[]Key{{Kind: KindToken, Issuer: "https://idp.example.com/987654321/",
				ID: "f61t6e20zdo3px56gepu8rzlsp4c1dpc0fx7"}}},
		{caep + "08-examples-token-claims-change-examples.txt", "https://idp.example.com/987654321/",
			"dae94fed5f459881efa38b65c6772ddc", CAEPTokenClaimsChange, 1615304991, []Key{}},
		{caep + "09-examples-credential-change-examples.txt", "https://idp.example.com/3456789/",
			"07efd930f0977e4fcc1149a733ce7f78", CAEPCredentialChange, 1615304991,
			[]Key{{Kind: KindIssSub, Issuer: "https://idp.example.com/3456789/", ID: "jane.smith@example.com"}}},
		{caep + "10-examples-assurance-level-change-examples.txt", "https://idp.example.com/3456789/",
			"07efd930f0977e4fcc1149a733ce7f78", CAEPAssuranceLevelChange, 1615304991,
			[]Key{{Kind: KindIssSub, Issuer: "https://idp.example.com/3456789/", ID: "jane.smith@example.com"}}},
		{caep + "11-examples-assurance-level-change-examples.txt", "https://idp.example.com/3456789/",
			"07efd930f0977e4fcc1149a733ce7f78", CAEPAssuranceLevelChange, 1615304991,
			[]Key{{Kind: KindIssSub, Issuer: "https://idp.example.com/3456789/", ID: "jane.smith@example.com"}}},
		{caep + "12-examples-device-compliance-change-exampl.txt", idp1, "24c63fb56e5a2d77a6b512616ca9fa24",
			CAEPDeviceComplianceChange, 1615304991,
			[]Key{{Kind: KindDevice, ID: "e9297990-14d2-42ec-a4a9-4036db86509a"}}},
		{caep + "13-examples-session-established-examples.txt", idp1, "24c63fb56e5a2d77a6b512616ca9fa24",
			CAEPSessionEstablished, 1615304991, []Key{{Kind: KindEmail, ID: "someuser@somedomain.com"}}},
		{caep + "14-examples-session-presented-examples.txt", idp1, "24c63fb56e5a2d77a6b512616ca9fa24",
			CAEPSessionPresented, 1615304991, []Key{{Kind: KindEmail, ID: "someuser@somedomain.com"}}},
		{caep + "15-examples-risk-level-change-examples.txt", idp1, "24c63fb56e5a2d77a6b512616ca9fa24",
			CAEPRiskLevelChange, 1615304991,
			[]Key{{Kind: KindIssSub, Issuer: "https://idp.example.com/3456789/", ID: "jane.doe@example.com"}}},
		{ssf + "07-the-aud-claim-aud-claim.txt", "https://transmitter.example.com", "123456",
			SSFVerification, 1493856000, []Key{{Kind: KindSub, ID: "72e6991badb44e08a69672960053b342"}}},
		{ssf + "08-example-sets-that-conform-to-the-shared-.txt", "https://idp.example.com/",
			"756E69717565206964656E746966696572", RISCAccountEnabled, 1520364019,
			[]Key{{Kind: KindEmail, ID: "foo@example.com"}}},
		{ssf + "09-example-sets-that-conform-to-the-shared-.txt", "https://idp.example.com/",
			"756E69717565206964656E746966696572", RISCAccountDisabled, 1520364019,
			[]Key{{Kind: KindPhone, ID: "+12065550123"}}},
		{ssf + "10-example-sets-that-conform-to-the-shared-.txt", "https://idp.example.com/",
			"756E69717565206964656E746966696572", CAEPTokenClaimsChange, 1520364019,
			[]Key{{Kind: KindEmail, ID: "user@example.com"}}},
		{ssf + "11-example-sets-that-conform-to-the-shared-.txt", "https://idp.example.com/",
			"756E69717565206964656E746966696572", CAEPSessionRevoked, 1600975810,
			[]Key{{Kind: KindIssSub, Issuer: "https://idp.example.com/3957ea72-1b66-44d6-a044-d805712b9288/",
				ID: "jane.smith@example.com"}, {Kind: KindDevice, ID: "e9297990-14d2-42ec-a4a9-4036db86509a"}}},
		{ssf + "12-example-sets-that-conform-to-the-shared-.txt", "https://sp.example2.com/",
			"756E69717565206964656E746966696572", CAEPTokenClaimsChange, 1600975810,
			[]Key{{Kind: KindEmail, ID: "foo@example2.com"}}},
		{ssf + "13-example-sets-that-conform-to-the-shared-.txt", "https://myservice.example3.com/",
			"756E69717565206964656E746966696534", CAEPTokenClaimsChange, 1600975810, []Key{}},
		{ssf + "52-triggering-a-verification-event-triggeri.txt", "https://transmitter.example.com", "123456",
			SSFVerification, 1493856000, []Key{{Kind: KindSub, ID: "f67e39a0a4d34d56b3aa1bc4cff0069f"}}},
		{ssf + "53-stream-updated-event-stream-updated-even.txt", "https://transmitter.example.com", "123456",
			SSFStreamUpdated, 1493856000, []Key{{Kind: KindSub, ID: "f67e39a0a4d34d56b3aa1bc4cff0069f"}}},
		{rfc + "02-example-openid-back-channel-logout-event.txt", "https://server.example.com", "bWJq",
			"http://schemas.openid.net/event/backchannel-logout", 1471566154,
			[]Key{{Kind: KindIssSub, Issuer: "https://server.example.com", ID: "248289761001"},
				{Kind: KindSession, ID: "08a5019c-17e1-4977-8f42-65a12843ea02"}}},
		{rfc + "04-example-risc-event.txt", "https://idp.example.com/", "756E69717565206964656E746966696572",
			"http://schemas.openid.net/secevent/risc/event-type/account-disabled", 1508184845,
			[]Key{{Kind: KindIssSub, Issuer: "https://idp.example.com/", ID: "7375626A656374"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			set, err := ParsePayload(readSpec(t, tt.file))
			require.NoError(t, err)
			assert.Equal(t, tt.iss, set.Issuer)
			assert.Equal(t, tt.jti, set.JTI)
			require.Len(t, set.Events, 1)
			ev := set.Events[0]
			assert.Equal(t, tt.typ, ev.Type)
			assert.Equal(t, time.Unix(tt.time, 0).UTC(), ev.Time)

			keys, err := ev.Subject.keys(roleFor(ev.Type))
			require.NoError(t, err)
			assert.Equal(t, tt.keys, keys.all())
		})
	}
}

func roleFor(typ string) role {
	if h, ok := handlers[normalType(typ)]; ok {
		return h.role
	}
	return roleUser
}

// TestParseSpecExamplesMultiAudience covers RFC 8417's examples that
// have no subject, several audiences or several events.
func TestParseSpecExamplesMultiAudience(t *testing.T) {
	set, err := ParsePayload(readSpec(t, "rfc8417-set-draft13/01-example-scim-password-reset-event.txt"))
	require.NoError(t, err)
	assert.Len(t, set.Audience, 2)
	require.Len(t, set.Events, 2)
	assert.Equal(t, "https://example.com/scim/event/passwordResetExt", set.Events[0].Type)
	assert.Equal(t, "urn:ietf:params:scim:event:passwordReset", set.Events[1].Type)
	assert.Equal(t, float64(5), set.Events[0].Claims["resetAttempts"])

	set, err = ParsePayload(readSpec(t, "rfc8417-set-draft13/03-example-consent-event.txt"))
	require.NoError(t, err)
	assert.Nil(t, set.Subject)
	assert.Equal(t, []string{"https://rp.example.com"}, set.Audience)

	set, err = ParsePayload(readSpec(t, "rfc8417-set-draft13/05-example-event-claims.txt"))
	require.NoError(t, err)
	assert.Equal(t, "urn:ietf:params:scim:event:create", set.Events[0].Type)
}

// TestParseUnsecuredExample decodes RFC 8417 section 2.2's unsecured
// SET: its payload parses, and the receiver refuses it for alg none.
func TestParseUnsecuredExample(t *testing.T) {
	raw := strings.Join(strings.Fields(string(readSpec(t,
		"rfc8417-set-draft13/09-example-unsecured-security-event-token.txt"))), "")
	parts := strings.Split(raw, ".")
	require.Len(t, parts, 3)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	set, err := ParsePayload(payload)
	require.NoError(t, err)
	assert.Equal(t, "4d3559ec67504aaba65d40b0363faad8", set.JTI)

	r := newTestReceiver(t, newSigner(t, "k1"), nil)
	err = r.Process(t.Context(), []byte(raw))
	assertSETErr(t, err, CodeInvalidKey, "unsigned SETs are refused")
}

func TestParsePayloadErrors(t *testing.T) {
	tests := []struct{ name, json, desc string }{
		{"not an object", `[]`, "payload is not a JSON object"},
		{"null", `null`, "payload is not a JSON object"},
		{"no iss", `{"jti":"1","iat":1,"events":{"e":{}}}`, "iss claim required"},
		{"no jti", `{"iss":"i","iat":1,"events":{"e":{}}}`, "jti claim required"},
		{"no iat", `{"iss":"i","jti":"1","events":{"e":{}}}`, "iat claim required"},
		{"iat string", `{"iss":"i","jti":"1","iat":"1","events":{"e":{}}}`, "iat claim must be a NumericDate"},
		{"iat negative", `{"iss":"i","jti":"1","iat":-1,"events":{"e":{}}}`, "iat claim must be a NumericDate"},
		{"aud number", `{"iss":"i","jti":"1","iat":1,"aud":1,"events":{"e":{}}}`,
			"aud claim must be a string or a list of strings"},
		{"no events", `{"iss":"i","jti":"1","iat":1}`, "events claim required"},
		{"events list", `{"iss":"i","jti":"1","iat":1,"events":[]}`, "events claim must be an object"},
		{"events empty", `{"iss":"i","jti":"1","iat":1,"events":{}}`, "events claim must hold 1 to 16 events"},
		{"event not object", `{"iss":"i","jti":"1","iat":1,"events":{"e":true}}`, `event "e" must be an object`},
		{"bad timestamp", `{"iss":"i","jti":"1","iat":1,"events":{"e":{"event_timestamp":"x"}}}`,
			`event_timestamp of "e" must be a NumericDate`},
		{"sub_id not object", `{"iss":"i","jti":"1","iat":1,"sub_id":"x","events":{"e":{}}}`,
			"sub_id claim must be a subject identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePayload([]byte(tt.json))
			assertSETErr(t, err, CodeInvalidRequest, tt.desc)
		})
	}
}

func assertSETErr(t *testing.T, err error, code, desc string) {
	t.Helper()
	var se *SETError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, ErrSET)
	assert.Equal(t, code, se.Code)
	assert.Equal(t, desc, se.Description)
}
