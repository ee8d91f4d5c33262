//go:build !linux

package residency

// ReleaseStartupPages is supported on Linux only.
func ReleaseStartupPages() (Released, error) { return Released{}, ErrUnsupported }
