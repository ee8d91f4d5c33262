//go:build !linux

package residency

import (
	"fmt"
	"time"
)

// ReleaseStartupPages is supported on Linux only.
func ReleaseStartupPages() (Released, error) {
	return Released{}, fmt.Errorf("paging out the executable's pages: %w", ErrUnsupported)
}

// processCPU is read on Linux only.
func processCPU() (time.Duration, error) {
	return 0, fmt.Errorf("reading the process's CPU time: %w", ErrUnsupported)
}
