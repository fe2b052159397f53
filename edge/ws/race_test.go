//go:build race

package ws

// raceEnabled: the race detector inflates memory, so TestIdleMemory only
// reports it.
const raceEnabled = true
