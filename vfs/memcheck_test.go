package vfs

import (
	"testing"

	"github.com/holefs/holefs/internal/rerun"
)

// TestMemcheck runs the whole package again with released frames poisoned
// and PROT_NONE (HOLEFS_MEMCHECK=1, frames.go): the race detector cannot see
// a use after release of memory outside the Go heap, this mode faults on it.
func TestMemcheck(t *testing.T) { rerun.Tests(t, "HOLEFS_MEMCHECK=1", ".") }
