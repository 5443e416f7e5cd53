package holefs

import (
	"fmt"
	"io/fs"
	"syscall"
	"time"

	"github.com/holefs/holefs/blockmap/passthrough"
	"github.com/holefs/holefs/vfs"
)

// defaultRevalidateInterval is Options.RevalidateInterval's default.
const defaultRevalidateInterval = time.Second

// openPassthrough opens BackendPassthrough over opts.BackingDir.
func openPassthrough(opts Options) (*FS, error) {
	dir := opts.BackingDir
	perr := func(err error) error { return &fs.PathError{Op: "open", Path: dir, Err: err} }
	switch {
	case dir == "":
		return nil, &fs.PathError{Op: "open", Path: "(passthrough)",
			Err: fmt.Errorf("the %s backend needs Options.BackingDir: %w", BackendPassthrough, syscall.EINVAL)}
	case opts.LockMode == LockNone && !opts.UnsafeLockNone:
		return nil, perr(fmt.Errorf("lock mode none lets reads cache data of punched ranges and writeback write it back; "+
			"it opens a backing directory only with Options.UnsafeLockNone: %w", syscall.EINVAL))
	}
	pt, err := passthrough.Open(dir, passthrough.Options{WrapDevice: opts.WrapDevice})
	if err != nil {
		return nil, perr(err)
	}
	interval := opts.RevalidateInterval
	if interval == 0 {
		interval = defaultRevalidateInterval
	}
	copts, vhooks := engineOptions(opts)
	v, err := vfs.Load(vfs.Backend{Store: pt, Backing: pt}, copts, vhooks, interval)
	if err != nil {
		pt.Close()
		return nil, perr(err)
	}
	return &FS{v: v, name: dir}, nil
}
