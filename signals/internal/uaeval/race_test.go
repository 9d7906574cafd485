//go:build race

package uaeval

const raceEnabled = true
