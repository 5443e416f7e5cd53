package fuse

import (
	"testing"

	"github.com/holefs/holefs/internal/rerun"
)

// TestOverURing runs the transport's own tests and the data, coherence,
// stress and torture tests again on mounts served over FUSE-over-io_uring,
// and the tests that use the mount as the world does (errnos against tmpfs,
// another uid, O_WRONLY and O_APPEND handles, shell redirection, cp and
// tar): the child turns the fuse module's enable_uring on and restores it;
// its tests skip where the kernel has none.
func TestOverURing(t *testing.T) {
	rerun.Tests(t, transportEnv+"=uring",
		"TestTransport|TestURing|TestOpenFlags|TestStatSizesTimes|TestXattrs|TestLibraryChangesSeenThroughMount|TestMmapCoherence|TestTortureTarget|TestStress|"+
			"TestConformance|TestWriteOnly|TestMappedStoresThroughAppendHandle|TestNamespaceErrnos|TestSpecialFiles|TestFIFOAndSocket")
}
