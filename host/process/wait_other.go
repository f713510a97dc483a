//go:build !linux

package process

import "errors"

// waitExited is only available on Linux; elsewhere the supervisor reaps first and does not kill
// leftovers (a recycled pid could be hit).
func waitExited(pid int) error { return errors.ErrUnsupported }
