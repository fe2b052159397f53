//go:build !unix

package scenario

import (
	"errors"
	"time"
)

// RaiseNoFile is not supported on this system; it returns 0 (unknown).
func RaiseNoFile() (uint64, error) { return 0, errors.New("RLIMIT_NOFILE is unix only") }

// processCPU is not supported on this system.
func processCPU() (time.Duration, bool) { return 0, false }
