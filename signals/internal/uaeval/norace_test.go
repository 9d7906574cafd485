//go:build !race

package uaeval

const raceEnabled = false
