package runtimeid

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckTypeMediaTypeSpellings: a typ is a media type (RFC 7515
// section 4.1.9), so surrounding whitespace and parameters do not make
// a logout token or a security event an access token, and do not keep
// an at+jwt from being one.
func TestCheckTypeMediaTypeSpellings(t *testing.T) {
	none := &tokenVerifier{}
	at := &tokenVerifier{types: []string{"at+jwt"}}
	tests := []struct {
		typ        string
		none, atOK bool
	}{
		{"logout+jwt", false, false},
		{" logout+jwt", false, false},
		{"logout+jwt ", false, false},
		{"logout+jwt; charset=utf-8", false, false},
		{"Application/SecEvent+JWT;x=y", false, false},
		{"dpop+jwt\t", false, false},
		{"at+jwt", true, true},
		{" application/at+jwt ", true, true},
		{"at+jwt; charset=utf-8", true, true},
		{"JWT", true, false},
		{"", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			assert.Equal(t, tt.none, none.checkType(tt.typ) == nil, "no Types")
			assert.Equal(t, tt.atOK, at.checkType(tt.typ) == nil, "Types at+jwt")
		})
	}
}

// TestTypesBlankAfterNormalising: a configured type that is empty once
// normalised would accept tokens without typ; it is a config error.
func TestTypesBlankAfterNormalising(t *testing.T) {
	src, err := StaticKeys(keys(t).set)
	require.NoError(t, err)
	for _, typ := range []string{"", " ", ";x", "application/"} {
		_, err := newTokenVerifier(&TokenConfig{Issuer: "https://i.test",
			Audience: []string{"api"}, Keys: src, Types: []string{typ}})
		var ce *ConfigError
		if assert.ErrorAs(t, err, &ce, "%q", typ) {
			assert.Equal(t, "Token.Types", ce.Field)
		}
	}
}
