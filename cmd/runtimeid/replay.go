package main

import (
	"context"
	"io"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error { return nil }
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error  { return nil }
