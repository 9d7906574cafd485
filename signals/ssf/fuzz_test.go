package ssf

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePayload feeds arbitrary payloads to the SET parser and the
// subject normaliser: they must return an error or a SET, never panic.
func FuzzParsePayload(f *testing.F) {
	files, _ := filepath.Glob("testdata/spec/*/*.txt")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(unfold.ReplaceAll(data, nil))
		}
	}
	f.Add([]byte(`{"iss":"i","jti":"1","iat":1,` +
		`"sub_id":{"format":"aliases","identifiers":[{"format":"complex"}]},` +
		`"events":{"e":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParsePayload(data)
		if err != nil {
			return
		}
		st := NewState(StateOptions{MaxEntries: 8})
		for i := range set.Events {
			_, _ = apply(st, &set.Events[i], t0)
		}
	})
}

// FuzzProcess feeds arbitrary bodies to the receiver's verifier.
func FuzzProcess(f *testing.F) {
	s := newSigner(f, "k1")
	f.Add(s.sign(f, "", claims("j1", RISCAccountDisabled, IssSub(tokIssuer, "a"), nil)))
	f.Add([]byte("eyJhbGciOiJub25lIiwidHlwIjoic2VjZXZlbnQrand0In0.e30."))
	f.Add([]byte("a.b.c"))
	r := newTestReceiver(f, s, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = r.Process(t.Context(), data)
	})
}
