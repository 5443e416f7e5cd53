package holefs

import "github.com/holefs/holefs/vfs"

// Extended attribute flags for Setxattr (unix.XATTR_CREATE and
// unix.XATTR_REPLACE).
const (
	XattrCreate  = vfs.XattrCreate  // fail with EEXIST if the attribute exists
	XattrReplace = vfs.XattrReplace // fail with ENODATA if it does not
)

// Extended attributes follow Linux's getxattr(2) family: names carry a
// namespace prefix ("user.", "trusted." or "security."; others are
// EOPNOTSUPP), a name is at most 255 bytes (ERANGE), a value at most 64 KiB
// (E2BIG), an attribute that is not there is ENODATA, and user attributes
// exist only on regular files and directories (EPERM to set one on a
// symlink). A Get or List with an empty dest returns the size needed; a
// dest too small is ERANGE. The names of Listxattr come in name order,
// each ended by a NUL byte. The library does not check the caller's
// privilege (trusted.* needs CAP_SYS_ADMIN through a mount).

// Getxattr reads the attribute attr of the named file, following
// symlinks, into dest and returns its length.
func (f *FS) Getxattr(name, attr string, dest []byte) (int, error) {
	in, err := f.v.Lookup(clean(name), true)
	if err != nil {
		return 0, pathErr("getxattr", name, err)
	}
	n, err := in.Getxattr(attr, dest)
	return n, pathErr("getxattr", name, err)
}

// Lgetxattr is Getxattr of a symlink itself.
func (f *FS) Lgetxattr(name, attr string, dest []byte) (int, error) {
	in, err := f.v.Lookup(clean(name), false)
	if err != nil {
		return 0, pathErr("lgetxattr", name, err)
	}
	n, err := in.Getxattr(attr, dest)
	return n, pathErr("lgetxattr", name, err)
}

// Setxattr sets the attribute attr of the named file, following symlinks;
// flags is 0, XattrCreate or XattrReplace.
func (f *FS) Setxattr(name, attr string, data []byte, flags int) error {
	in, err := f.v.Lookup(clean(name), true)
	if err != nil {
		return pathErr("setxattr", name, err)
	}
	return pathErr("setxattr", name, in.Setxattr(attr, data, flags))
}

// Lsetxattr is Setxattr of a symlink itself.
func (f *FS) Lsetxattr(name, attr string, data []byte, flags int) error {
	in, err := f.v.Lookup(clean(name), false)
	if err != nil {
		return pathErr("lsetxattr", name, err)
	}
	return pathErr("lsetxattr", name, in.Setxattr(attr, data, flags))
}

// Listxattr lists the attribute names of the named file, following
// symlinks, into dest and returns the length of the list.
func (f *FS) Listxattr(name string, dest []byte) (int, error) {
	in, err := f.v.Lookup(clean(name), true)
	if err != nil {
		return 0, pathErr("listxattr", name, err)
	}
	n, err := in.Listxattr(dest)
	return n, pathErr("listxattr", name, err)
}

// Llistxattr is Listxattr of a symlink itself.
func (f *FS) Llistxattr(name string, dest []byte) (int, error) {
	in, err := f.v.Lookup(clean(name), false)
	if err != nil {
		return 0, pathErr("llistxattr", name, err)
	}
	n, err := in.Listxattr(dest)
	return n, pathErr("llistxattr", name, err)
}

// Removexattr removes the attribute attr of the named file, following
// symlinks.
func (f *FS) Removexattr(name, attr string) error {
	in, err := f.v.Lookup(clean(name), true)
	if err != nil {
		return pathErr("removexattr", name, err)
	}
	return pathErr("removexattr", name, in.Removexattr(attr))
}

// Lremovexattr is Removexattr of a symlink itself.
func (f *FS) Lremovexattr(name, attr string) error {
	in, err := f.v.Lookup(clean(name), false)
	if err != nil {
		return pathErr("lremovexattr", name, err)
	}
	return pathErr("lremovexattr", name, in.Removexattr(attr))
}

// Getxattr reads the attribute attr of the open file into dest
// (fgetxattr(2)).
func (f *File) Getxattr(attr string, dest []byte) (int, error) {
	in, err := f.inode()
	if err != nil {
		return 0, f.err("fgetxattr", err)
	}
	n, err := in.Getxattr(attr, dest)
	return n, f.err("fgetxattr", err)
}

// Setxattr sets the attribute attr of the open file (fsetxattr(2)).
func (f *File) Setxattr(attr string, data []byte, flags int) error {
	in, err := f.inode()
	if err != nil {
		return f.err("fsetxattr", err)
	}
	return f.err("fsetxattr", in.Setxattr(attr, data, flags))
}

// Listxattr lists the open file's attribute names into dest
// (flistxattr(2)).
func (f *File) Listxattr(dest []byte) (int, error) {
	in, err := f.inode()
	if err != nil {
		return 0, f.err("flistxattr", err)
	}
	n, err := in.Listxattr(dest)
	return n, f.err("flistxattr", err)
}

// Removexattr removes the attribute attr of the open file
// (fremovexattr(2)).
func (f *File) Removexattr(attr string) error {
	in, err := f.inode()
	if err != nil {
		return f.err("fremovexattr", err)
	}
	return f.err("fremovexattr", in.Removexattr(attr))
}

// inode returns the open file's inode; EBADF once the file is closed.
func (f *File) inode() (*vfs.Inode, error) {
	if _, err := f.h.Stat(); err != nil {
		return nil, err
	}
	return f.h.Inode(), nil
}
