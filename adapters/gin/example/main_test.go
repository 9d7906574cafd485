package main

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func init() { gin.SetMode(gin.ReleaseMode) }

func TestRouter(t *testing.T) { demo.CheckRouter(t, newRouter) }
