package fuse

import (
	"context"
	"io"
	"math"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/holefs/holefs/vfs"
)

// handle is an open regular file: one engine handle per FUSE open, so
// the engine's per-handle state (readahead window, the fsync error
// cursor, O_APPEND) is the kernel file's.
type handle struct {
	s        *Server
	h        *vfs.File
	writable bool // opened for writing; immutable
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
	_ fs.FileLseeker   = (*handle)(nil)
)

// openMask is what of open(2)'s flags the engine acts on; the kernel has
// handled the rest (O_CREAT, O_EXCL, O_NOCTTY, O_CLOEXEC, ...).
//
// O_DIRECT is not among them. Through the mount it means what it means
// for a network filesystem: the kernel keeps no page cache for the file
// descriptor and sends every read and write to the server, which serves
// them from its own cache, the engine's, as an NFS server would. So a
// direct read is an engine cache hit, not a device read after writing the
// engine's dirty pages back, and any alignment is accepted (the engine's
// own direct I/O, reachable through the library, wants 4 KiB).
const openMask = syscall.O_ACCMODE | syscall.O_APPEND | syscall.O_TRUNC

// open opens an engine handle for the kernel's open of n.
//
// With the writeback cache the kernel reads through whichever handle it
// has at hand: a write of part of a page it does not cache makes it fill
// the page first, through the writer's handle, write-only or not. So a
// handle opened for writing can read, as libfuse's passthrough opens its
// backing files O_RDWR in that mode. The user gains nothing by it: the
// kernel refuses read(2) on a descriptor not opened for reading before
// asking the server. Nor does the engine append with O_APPEND in that
// mode: the kernel appends at the size it owns and writes the pages back
// at their offsets, through any handle open for writing, one opened with
// O_APPEND included.
func (s *Server) open(n *node, flags uint32) (*handle, error) {
	eflags := int(flags) & openMask
	if n.in.SequentialZone() {
		// zonefs: a sequential zone file takes direct writes only, at its
		// end; O_DIRECT reaches the engine, whose direct I/O wants 4 KiB
		// alignment, as zonefs's on a 4 KiB-sector device.
		eflags |= int(flags) & syscall.O_DIRECT
	}
	if s.opts.Cache == CacheWriteback {
		eflags &^= syscall.O_APPEND
		if eflags&syscall.O_ACCMODE == syscall.O_WRONLY {
			eflags = eflags&^syscall.O_ACCMODE | syscall.O_RDWR
		}
	}
	h, err := s.v.OpenFrontend(n.in, eflags)
	if err != nil {
		return nil, err
	}
	return &handle{s: s, h: h, writable: flags&syscall.O_ACCMODE != syscall.O_RDONLY}, nil
}

// Read reads from the engine's page cache.
func (fh *handle) Read(ctx context.Context, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	n, err := fh.h.ReadAt(dest, off)
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		return nil, fh.s.errno(opRead, err)
	}
	return gofuse.ReadResultData(dest[:n]), 0
}

// Write writes into the engine's page cache.
// With O_APPEND (in the modes without the kernel's writeback cache, which
// handles appends itself: see open) the engine writes at its end of file,
// whatever offset the kernel assumed.
func (fh *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, _, err := fh.h.WriteAt(data, off)
	return uint32(n), fh.s.errno(opWrite, err)
}

// writePages writes back pages of the inode ino at off, for the kernel,
// in the modes without the writeback cache: there only a shared writable
// mapping dirties the kernel's pages, and the kernel writes them back
// (WRITE_CACHE) through any handle of the file open for writing, one
// opened with O_APPEND included, whose engine handle would append the
// pages at its end of file instead of writing them where they belong. So
// such a write goes through a handle opened for it. (With the writeback
// cache no engine handle appends: see open.)
func (s *Server) writePages(ino uint64, data []byte, off uint64) (uint32, gofuse.Status) {
	in := s.v.Inode(ino)
	if in == nil {
		return 0, gofuse.Status(s.errno(opWrite, syscall.ESTALE))
	}
	if off > math.MaxInt64 {
		return 0, gofuse.Status(s.errno(opWrite, syscall.EFBIG))
	}
	h, err := s.v.OpenFrontend(in, syscall.O_WRONLY)
	if err != nil {
		return 0, gofuse.Status(s.errno(opWrite, err))
	}
	n, _, err := h.WriteAt(data, int64(off))
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	return uint32(n), gofuse.Status(s.errno(opWrite, err))
}

// Flush is close(2) of one descriptor, after the kernel wrote back what
// it cached for the file. holefs reports write errors at fsync, like a
// local filesystem, not at close.
func (fh *handle) Flush(ctx context.Context) syscall.Errno {
	fh.s.refreshAttrs(fh.h.Inode().Ino())
	return 0
}

// Release is the last close of the kernel's open file.
func (fh *handle) Release(ctx context.Context) syscall.Errno {
	return fh.s.errno(opRelease, fh.h.Close())
}

// Allocate is fallocate(2). The kernel forwards mode 0, KEEP_SIZE,
// PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE (with or without KEEP_SIZE) and
// refuses COLLAPSE_RANGE and INSERT_RANGE itself (EOPNOTSUPP), so those
// two are reachable only through the library.
func (fh *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if off > math.MaxInt64 || size > math.MaxInt64 {
		return fh.s.errno(opFallocate, syscall.EFBIG)
	}
	return fh.s.errno(opFallocate, fh.h.Fallocate(mode, int64(off), int64(size)))
}

// Lseek answers SEEK_DATA and SEEK_HOLE (the kernel handles the others).
func (fh *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	if off > math.MaxInt64 {
		return 0, fh.s.errno(opLseek, syscall.ENXIO)
	}
	pos, err := fh.h.SeekDataHole(int64(off), int(whence))
	return uint64(pos), fh.s.errno(opLseek, err)
}
