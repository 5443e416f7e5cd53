package vfs

import (
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Extended attribute limits and flags, as Linux's.
const (
	// XattrCreate fails Setxattr with EEXIST if the attribute exists.
	XattrCreate = 0x1
	// XattrReplace fails Setxattr with ENODATA if the attribute does not exist.
	XattrReplace = 0x2
	// XattrNameMax is the longest attribute name, prefix included.
	XattrNameMax = 255
	// XattrSizeMax is the largest value (E2BIG beyond).
	XattrSizeMax = 65536
	// XattrListMax is the largest list of names Listxattr returns; an
	// inode refuses names beyond it with ENOSPC, so its list always fits.
	XattrListMax = 65536
	// XattrInodeMax bounds the bytes of names and values of one inode
	// (ENOSPC beyond), as a filesystem's attribute space does.
	XattrInodeMax = 1 << 20

	// xattrCaps holds a file's capabilities, which writing to it removes.
	xattrCaps = "security.capability"
)

// checkXattrName applies Linux's name rules: an empty or too long name is
// ERANGE; the name must be in the user, trusted or security namespace
// (system.* holds POSIX ACLs, which holefs does not have: EOPNOTSUPP, as for
// an unknown namespace), with something after the prefix (EINVAL).
func checkXattrName(name string) error {
	if name == "" || len(name) > XattrNameMax {
		return syscall.ERANGE
	}
	for _, p := range []string{"user.", "trusted.", "security."} {
		if strings.HasPrefix(name, p) {
			if len(name) == len(p) {
				return syscall.EINVAL
			}
			return nil
		}
	}
	return syscall.EOPNOTSUPP
}

// userXattrOK applies Linux's xattr_permission rule for the user
// namespace: only regular files and directories carry user attributes.
func (in *Inode) userXattrOK(name string) bool {
	return !strings.HasPrefix(name, "user.") || in.typ == syscall.S_IFREG || in.IsDir()
}

// Getxattr copies the value of the attribute name into dest and returns
// its length, as getxattr(2): with an empty dest it only returns the
// length; ERANGE if dest is too small, ENODATA if there is no such
// attribute.
func (in *Inode) Getxattr(name string, dest []byte) (int, error) {
	if err := checkXattrName(name); err != nil {
		return 0, err
	}
	if !in.userXattrOK(name) {
		return 0, syscall.ENODATA
	}
	in.fs.nsMu.RLock()
	defer in.fs.nsMu.RUnlock()
	v, ok := in.xattrs[name]
	switch {
	case !ok:
		return 0, syscall.ENODATA
	case len(dest) == 0:
		return len(v), nil
	case len(dest) < len(v):
		return 0, syscall.ERANGE
	}
	return copy(dest, v), nil
}

// Setxattr sets the attribute name to value, as setxattr(2): flags is 0,
// XattrCreate or XattrReplace. A value over XattrSizeMax is E2BIG; an
// inode whose attributes would outgrow XattrInodeMax or XattrListMax,
// ENOSPC; user attributes on a symlink, EPERM.
func (in *Inode) Setxattr(name string, value []byte, flags int) error {
	if flags&^(XattrCreate|XattrReplace) != 0 {
		return syscall.EINVAL
	}
	if err := checkXattrName(name); err != nil {
		return err
	}
	if len(value) > XattrSizeMax {
		return syscall.E2BIG
	}
	if !in.userXattrOK(name) {
		return syscall.EPERM
	}
	f := in.fs
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	old, exists := in.xattrs[name]
	switch {
	case exists && flags&XattrCreate != 0:
		return syscall.EEXIST
	case !exists && flags&XattrReplace != 0:
		return syscall.ENODATA
	}
	list, total := in.xattrSpace()
	total += len(value) - len(old)
	if !exists {
		list += len(name) + 1
		total += len(name)
	}
	if list > XattrListMax || total > XattrInodeMax {
		return syscall.ENOSPC
	}
	if in.xattrs == nil {
		in.xattrs = map[string][]byte{}
	}
	in.xattrs[name] = slices.Clone(value)
	in.ctime.Store(time.Now().UnixNano())
	f.logXattr(in, name, value, true)
	return nil
}

// xattrSpace returns the length of the inode's name list and the bytes of
// its names and values. The caller holds nsMu.
func (in *Inode) xattrSpace() (list, total int) {
	for n, v := range in.xattrs {
		list += len(n) + 1
		total += len(n) + len(v)
	}
	return list, total
}

// Listxattr copies the inode's attribute names, each ended by a NUL byte,
// into dest in name order and returns the length of the list, as
// listxattr(2): with an empty dest it only returns the length; ERANGE if
// dest is too small.
func (in *Inode) Listxattr(dest []byte) (int, error) {
	in.fs.nsMu.RLock()
	defer in.fs.nsMu.RUnlock()
	list, _ := in.xattrSpace()
	if len(dest) == 0 {
		return list, nil
	}
	if len(dest) < list {
		return 0, syscall.ERANGE
	}
	n := 0
	for _, name := range slices.Sorted(maps.Keys(in.xattrs)) {
		n += copy(dest[n:], name)
		dest[n] = 0
		n++
	}
	return n, nil
}

// Removexattr removes the attribute name, as removexattr(2): ENODATA if
// there is none.
func (in *Inode) Removexattr(name string) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	if !in.userXattrOK(name) {
		return syscall.EPERM
	}
	f := in.fs
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if _, ok := in.xattrs[name]; !ok {
		return syscall.ENODATA
	}
	delete(in.xattrs, name)
	if len(in.xattrs) == 0 {
		in.xattrs = nil
	}
	in.ctime.Store(time.Now().UnixNano())
	f.logXattr(in, name, nil, false)
	return nil
}
