package adapt

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/api/orders", "/api/orders"},
		{"/api/orders/:id", "/api/orders/{id}"},
		{"/api/:org/orders/:id/items", "/api/{org}/orders/{id}/items"},
		{"/static/*filepath", "/static/{filepath...}"},
		{"/files/*", "/files/*"},
		{"/api/orders/{id}", "/api/orders/{id}"},
		{"/api/orders/{id:[0-9]+}", "/api/orders/{id}"},
		{"/api/{code:[a-z]{3}}/x", "/api/{code}/x"},
		{"/api/{path:[a-z/]+}", "/api/{path}"},
		{"/a:b/c*d", "/a:b/c*d"},
		{"/api/{unclosed:*", "/api/{unclosed:*"},
		{"/:", "/:"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Normalize(tt.in), tt.in)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/a/:b", "/*x", "/{a:{b}}", "{", "/:/*", "}{:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Normalize(s)
		if !strings.ContainsAny(s, ":*") && got != s {
			t.Fatalf("Normalize(%q) = %q, want it unchanged", s, got)
		}
		if len(got) > 3*len(s)+8 {
			t.Fatalf("Normalize(%q) grew to %d bytes", s, len(got))
		}
	})
}
