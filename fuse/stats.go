package fuse

import (
	"cmp"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Operation names, as Stats reports failures.
const (
	opLookup        = "lookup"
	opSetattr       = "setattr"
	opOpen          = "open"
	opCreate        = "create"
	opMkdir         = "mkdir"
	opMknod         = "mknod"
	opRmdir         = "rmdir"
	opUnlink        = "unlink"
	opRename        = "rename"
	opLink          = "link"
	opSymlink       = "symlink"
	opReadlink      = "readlink"
	opOpendir       = "opendir"
	opReaddir       = "readdir"
	opRead          = "read"
	opWrite         = "write"
	opRelease       = "release"
	opFsync         = "fsync"
	opFallocate     = "fallocate"
	opLseek         = "lseek"
	opCopyFileRange = "copy_file_range"
	opGetxattr      = "getxattr"
	opSetxattr      = "setxattr"
	opListxattr     = "listxattr"
	opRemovexattr   = "removexattr"
)

type errKey struct {
	op    string
	errno syscall.Errno
}

// ErrorCount is how many requests of one operation failed with one errno.
type ErrorCount struct {
	Op    string // "lookup", "read", "fallocate", ...
	Errno string // "ENOENT", "EIO", ...
	N     int64
}

// Stats are a mount's cumulative counters.
type Stats struct {
	// Errors counts failed requests by operation and errno, sorted.
	// Expected failures are counted too (a lookup of a name that does not
	// exist is ENOENT).
	Errors []ErrorCount
	// Notifications counts the kernel cache invalidations sent for
	// changes made through the library; NotifyMisses those the kernel
	// answered ENOENT (it had nothing of the inode cached) and
	// NotifyFailures those that failed otherwise.
	Notifications, NotifyMisses, NotifyFailures int64
	// Transport is the transport serving the mount; RingRequests counts
	// the requests it served through io_uring (0 on TransportDev).
	Transport    Transport
	RingRequests int64
}

// Stats returns a snapshot of the mount's counters.
func (s *Server) Stats() Stats {
	st := Stats{Notifications: s.notifies.Load(), NotifyMisses: s.notifyMisses.Load(), NotifyFailures: s.notifyFails.Load(), Transport: s.transport}
	if s.ring != nil {
		st.RingRequests = s.ring.ringServed.Load()
	}
	s.errMu.Lock()
	for k, n := range s.errs {
		st.Errors = append(st.Errors, ErrorCount{Op: k.op, Errno: unix.ErrnoName(k.errno), N: n})
	}
	s.errMu.Unlock()
	slices.SortFunc(st.Errors, func(a, b ErrorCount) int {
		return cmp.Or(strings.Compare(a.Op, b.Op), strings.Compare(a.Errno, b.Errno))
	})
	return st
}
