package stepup

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeReturn: whatever is accepted is a path on this site, which a
// browser resolves against any origin to that same origin.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/a?b", "//evil", `/\evil`, "https://x", "/%2F%2Fx",
		"/\t/x", "/a#b", "", "/.."} {
		f.Add(s)
	}
	base, _ := url.Parse("https://app.example/stepup/")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := safeReturn(s)
		if !ok {
			return
		}
		u, err := base.Parse(got)
		if err != nil {
			t.Fatalf("accepted %q does not parse: %v", got, err)
		}
		if u.Host != "app.example" || u.Scheme != "https" {
			t.Fatalf("accepted %q leads to %s://%s", got, u.Scheme, u.Host)
		}
		if strings.HasPrefix(got, "//") || strings.Contains(got, `\`) {
			t.Fatalf("accepted %q", got)
		}
	})
}

// FuzzDecode: any body gives a request or a 400, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"code":"123456","return_to":"/x"}`))
	f.Add([]byte(`{"credential":{"id":1}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decode(b)
		if err == nil && req.ReturnTo != "" && req.ReturnTo[0] != '/' {
			t.Fatalf("return_to %q", req.ReturnTo)
		}
	})
}
