package config

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func mustRequest(t *testing.T, method, target string) *http.Request {
	t.Helper()
	return httptest.NewRequest(method, target, nil)
}

func replaceAll(s, old, new string) string { return strings.ReplaceAll(s, old, new) }
