package fuse

import (
	"context"
	"os"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/holefs/holefs/vfs"
)

// dirHandle is an open directory. Its listing is a snapshot taken at the
// first read after opendir(3) or rewinddir(3) (a READDIR at offset 0), and
// the offsets it hands the kernel are positions in that snapshot, so a
// reader that goes on with getdents(2) or comes back with seekdir(3) never
// skips or repeats an entry however the directory changes meanwhile. POSIX
// leaves it unspecified whether entries added or removed since the last
// opendir or rewinddir are returned; here they are not (removed ones are,
// from the snapshot).
type dirHandle struct {
	n *node
	h *vfs.File // holds the directory open; for fsync

	mu   sync.Mutex
	ents []gofuse.DirEntry // the snapshot, "." and ".." first; +checklocks:mu
	pos  int               // index of the next entry; +checklocks:mu
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
)

// OpendirHandle opens a directory.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, err := n.s.v.OpenFrontend(n.in, os.O_RDONLY)
	if err != nil {
		return nil, 0, n.s.errno(opOpendir, err)
	}
	return &dirHandle{n: n, h: h}, 0, 0
}

// snapshot lists the directory. The caller holds d.mu.
func (d *dirHandle) snapshot() error {
	v := d.n.s.v
	list, err := v.ReadDirInode(d.n.in)
	if err != nil {
		return err
	}
	ents := make([]gofuse.DirEntry, 0, len(list)+2)
	ents = append(ents,
		gofuse.DirEntry{Name: ".", Ino: d.n.in.Ino(), Mode: syscall.S_IFDIR},
		gofuse.DirEntry{Name: "..", Ino: v.Parent(d.n.in).Ino(), Mode: syscall.S_IFDIR})
	for _, e := range list {
		ents = append(ents, gofuse.DirEntry{Name: e.Name, Ino: e.Ino, Mode: e.Mode})
	}
	for i := range ents {
		ents[i].Off = uint64(i + 1) // the offset after the entry
	}
	d.ents = ents
	return nil
}

// Readdirent returns the next entry, nil at the end.
func (d *dirHandle) Readdirent(ctx context.Context) (*gofuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ents == nil {
		if err := d.snapshot(); err != nil {
			return nil, d.n.s.errno(opReaddir, err)
		}
	}
	if d.pos >= len(d.ents) {
		return nil, 0
	}
	e := d.ents[d.pos]
	d.pos++
	return &e, 0
}

// Seekdir moves to the entry after offset off; offset 0 takes a new
// snapshot (rewinddir).
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		d.ents, d.pos = nil, 0
		return 0
	}
	if d.ents == nil {
		if err := d.snapshot(); err != nil {
			return d.n.s.errno(opReaddir, err)
		}
	}
	d.pos = int(min(off, uint64(len(d.ents))))
	return 0
}

// Releasedir closes the directory.
func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	_ = d.h.Close()
}
