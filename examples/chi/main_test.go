package main

import (
	"testing"

	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func TestRouter(t *testing.T) { demo.CheckRouter(t, newRouter) }
