//go:build race

package runtimeid_test

const raceEnabled = true
