package pagecache

import "fmt"

// LockMode selects how fill paths are serialized against block removal.
type LockMode uint8

const (
	// LockInvalidate is the invalidate-lock protocol (the default): fill
	// paths take the mapping's invalidate lock shared over the pages they
	// fill on a cache miss, cache hits take nothing, and readers never wait
	// behind writers, nor behind removers of other ranges.
	LockInvalidate LockMode = iota
	// LockRWSem is the XFS-style fix: buffered reads, readahead and
	// fadvise/madvise hold the inode lock shared for the whole call, and
	// faults take the invalidate lock shared. Correct, but every read waits
	// behind every writer of the file.
	LockRWSem
	// LockNone gives fill paths no protection. It reproduces the race and
	// exists only for the torture harness, tests and benchmarks.
	LockNone
)

var lockModeNames = [...]string{LockInvalidate: "invalidate", LockRWSem: "rwsem", LockNone: "none"}

func (m LockMode) String() string {
	if int(m) < len(lockModeNames) {
		return lockModeNames[m]
	}
	return fmt.Sprintf("LockMode(%d)", uint8(m))
}

// ParseLockMode parses "invalidate", "rwsem" or "none".
func ParseLockMode(s string) (LockMode, error) {
	for i, n := range lockModeNames {
		if n == s {
			return LockMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown lock mode %q (want invalidate, rwsem or none)", s)
}

// LockModes lists every mode, for tests and benchmarks that compare them.
var LockModes = []LockMode{LockInvalidate, LockRWSem, LockNone}
