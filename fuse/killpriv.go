package fuse

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/holefs/holefs/vfs"
)

const openTrunc = syscall.O_TRUNC

// The mount takes over what Linux calls killing privileges
// (FUSE_HANDLE_KILLPRIV_V2): writing to or truncating a file clears its
// security.capability attribute and, if the writer lacks CAP_FSETID, its
// set-user-ID bit and the set-group-ID bit of a group-executable file.
// Without it the kernel asks the server for security.capability before
// every write(2) (a GETXATTR round trip per write, which capped buffered
// random writes at about a quarter of what they reach with it); with it
// the kernel marks the superblock SB_NOSEC and only says, per WRITE, OPEN
// with O_TRUNC or SETATTR of the size, whether the caller lacks
// CAP_FSETID. go-fuse's node API does not pass those flags on, so rawFS
// reads them from the requests before handing them to go-fuse's bridge.
// SETATTR passes its FATTR_KILL_SUIDGID through (see node.Setattr).

// rawFS is go-fuse's request bridge with the kill-privileges step in front
// of WRITE, OPEN and CREATE, and page writeback routed around the handle
// a WRITE names.
type rawFS struct {
	gofuse.RawFileSystem
	s *Server
}

// killPriv applies the kill-privileges rule to the inode named by a
// request of caller c.
func (r *rawFS) killPriv(ino uint64, suidgid bool, c *gofuse.Caller) {
	if in := r.s.v.Inode(ino); in != nil {
		_ = in.KillPriv(suidgid, suidgid && notInGroup(c, in.Stat()), true)
	}
}

// Write kills privileges, then writes.
func (r *rawFS) Write(cancel <-chan struct{}, in *gofuse.WriteIn, data []byte) (uint32, gofuse.Status) {
	r.killPriv(in.NodeId, in.WriteFlags&gofuse.WRITE_KILL_SUIDGID != 0, &in.Caller)
	if r.pageWriteback(in) {
		return r.s.writePages(in.NodeId, data, in.Offset)
	}
	return r.RawFileSystem.Write(cancel, in, data)
}

// Writev kills privileges, then writes.
func (r *rawFS) Writev(cancel <-chan struct{}, in *gofuse.WriteIn, data [][]byte) (uint32, gofuse.Status) {
	r.killPriv(in.NodeId, in.WriteFlags&gofuse.WRITE_KILL_SUIDGID != 0, &in.Caller)
	if r.pageWriteback(in) {
		return r.s.writePages(in.NodeId, slices.Concat(data...), in.Offset)
	}
	return r.RawFileSystem.Writev(cancel, in, data)
}

// pageWriteback reports whether a WRITE is the kernel writing back pages
// of a shared writable mapping in a mode without the writeback cache
// (see Server.writePages).
func (r *rawFS) pageWriteback(in *gofuse.WriteIn) bool {
	return in.WriteFlags&gofuse.WRITE_CACHE != 0 && r.s.opts.Cache != CacheWriteback
}

// Open opens, then kills privileges if it truncated the file.
func (r *rawFS) Open(cancel <-chan struct{}, in *gofuse.OpenIn, out *gofuse.OpenOut) gofuse.Status {
	st := r.RawFileSystem.Open(cancel, in, out)
	if st == gofuse.OK && in.Flags&uint32(openTrunc) != 0 {
		r.killPriv(in.NodeId, in.Mode&gofuse.OPEN_KILL_SUIDGID != 0, &in.Caller)
	}
	return st
}

// Create creates and opens, then kills privileges if the open found the
// file there already and truncated it.
func (r *rawFS) Create(cancel <-chan struct{}, in *gofuse.CreateIn, name string, out *gofuse.CreateOut) gofuse.Status {
	st := r.RawFileSystem.Create(cancel, in, name, out)
	if st == gofuse.OK && in.Flags&uint32(openTrunc) != 0 {
		r.killPriv(out.NodeId, in.OpenFlags&gofuse.OPEN_KILL_SUIDGID != 0, &in.Caller)
	}
	return st
}

// notInGroup reports whether a set-group-ID file without group execution
// loses the bit to a change by caller c, as Linux's
// setattr_should_drop_sgid: when c is not in the file's group. Other
// files need no answer (false). A FUSE request carries the caller's fsgid
// but not its supplementary groups, which are read from /proc for this
// rare case.
func notInGroup(c *gofuse.Caller, a vfs.Attr) bool {
	if a.Mode&(syscall.S_ISGID|syscall.S_IXGRP) != syscall.S_ISGID || c.Gid == a.Gid {
		return false
	}
	return !inGroups(c.Pid, a.Gid)
}

// inGroups reports whether the process (thread) pid has gid among its
// supplementary groups. A caller gone is in none: the bit goes, the safe
// way to err.
func inGroups(pid uint32, gid uint32) bool {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		groups, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		for _, g := range strings.Fields(groups) {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) == gid {
				return true
			}
		}
		return false
	}
	return false
}
