package fuse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The conformance test runs one table of system calls against a tmpfs and
// against holefs mounts, as root and as unprivileged users in child
// processes, and requires holefs to give what tmpfs gives: the same errno,
// and the same mode, owner, link count, size, content and changed or
// unchanged times of the files the row names. Each row's expected errnos
// are checked on tmpfs too, which proves the table.

// Users of the table. other belongs to the supplementary group grp,
// nobody does not.
const (
	uidNobody = 65534
	uidOther  = 65533
	grp       = 65532
)

// cred is who runs a row's action.
type cred struct {
	Uid, Gid uint32
	Groups   []uint32
}

var (
	asRoot   = cred{0, 0, nil}
	asNobody = cred{uidNobody, uidNobody, nil}
	asOther  = cred{uidOther, uidOther, []uint32{grp}}
)

// op is one system call of a row, on paths relative to the row's
// directory (see doOp for the kinds).
type op struct {
	Kind     string
	Path, To string
	Mode     uint32
	Uid, Gid int
	Data     string
	Name     string // of an extended attribute; default user.test
	Off      int64
	Flags    int
	Want     syscall.Errno // what tmpfs returns
}

// Constructors keep the table readable.
func create(p string, mode uint32) op { return op{Kind: "create", Path: p, Mode: mode} }
func mkdir(p string, mode uint32) op  { return op{Kind: "mkdir", Path: p, Mode: mode} }
func chmod(p string, mode uint32) op  { return op{Kind: "chmod", Path: p, Mode: mode} }
func chown(p string, uid, gid int) op { return op{Kind: "chown", Path: p, Uid: uid, Gid: gid} }
func write(p, data string, off int64, flags int) op {
	return op{Kind: "write", Path: p, Data: data, Off: off, Flags: flags}
}
func (o op) want(e syscall.Errno) op { o.Want = e; return o }

// row is one case of the table: setup runs as root in the test process,
// then act as who in a child process; check names the paths compared.
type row struct {
	name  string
	setup []op
	who   cred
	act   []op
	check []string
	// deviation, if set, says why holefs cannot match tmpfs in this row
	// in the cache modes deviationIn (a deviation the package
	// documentation lists): a mismatch in a tree mounted in one of them
	// is logged, not failed. The other modes must match.
	deviation   string
	deviationIn []CacheMode
}

// deviates reports whether a mismatch of row r in the tree name is a
// known deviation.
func (r row) deviates(name string) bool {
	for _, m := range r.deviationIn {
		if strings.HasSuffix(name, "/"+m.String()) {
			return true
		}
	}
	return false
}

// conformanceRows is the table. Setups make files owned by the users
// with chown; the row's directory is 0777, owned by root.
var conformanceRows = []row{
	// chmod.
	{name: "chmod own file", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{chmod("f", 0o600)}, check: []string{"f"}},
	{name: "chmod another's file", setup: []op{create("f", 0o666), chown("f", uidOther, uidOther)},
		who: asNobody, act: []op{chmod("f", 0o600).want(syscall.EPERM)}, check: []string{"f"}},
	{name: "chmod by root", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asRoot, act: []op{chmod("f", 0o4711)}, check: []string{"f"}},
	{name: "chmod setgid, owner not in the group", setup: []op{create("f", 0o644), chown("f", uidNobody, grp)},
		who: asNobody, act: []op{chmod("f", 0o2755)}, check: []string{"f"}},
	{name: "chmod setgid, owner in the group", setup: []op{create("f", 0o644), chown("f", uidOther, grp)},
		who: asOther, act: []op{chmod("f", 0o2755)}, check: []string{"f"}},
	{name: "chmod setgid dir, owner not in the group", setup: []op{mkdir("d", 0o755), chown("d", uidNobody, grp)},
		who: asNobody, act: []op{chmod("d", 0o2775)}, check: []string{"d"}},
	{name: "chmod setuid own file", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{chmod("f", 0o4755)}, check: []string{"f"}},

	// chown.
	{name: "chown own file to another user", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{chown("f", uidOther, -1).want(syscall.EPERM)}, check: []string{"f"}},
	{name: "chown own file to own group", setup: []op{create("f", 0o644), chown("f", uidNobody, grp)},
		who: asNobody, act: []op{chown("f", -1, uidNobody)}, check: []string{"f"}},
	{name: "chown own file to a group not one's", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{chown("f", -1, grp).want(syscall.EPERM)}, check: []string{"f"}},
	{name: "chown own file to a supplementary group", setup: []op{create("f", 0o6755), chown("f", uidOther, uidOther), chmod("f", 0o6755)},
		who: asOther, act: []op{chown("f", -1, grp)}, check: []string{"f"}},
	{name: "chown to a supplementary group, setgid without group exec", setup: []op{create("f", 0o644), chown("f", uidOther, uidOther), chmod("f", 0o6745)},
		who: asOther, act: []op{chown("f", -1, grp)}, check: []string{"f"}},
	{name: "chown another's file to own group", setup: []op{create("f", 0o666), chown("f", uidOther, uidOther)},
		who: asNobody, act: []op{chown("f", -1, uidNobody).want(syscall.EPERM)}, check: []string{"f"}},
	{name: "chown own file to itself", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody), chmod("f", 0o6755)},
		who: asNobody, act: []op{chown("f", uidNobody, uidNobody)}, check: []string{"f"}},
	{name: "chown -1 -1 of a setuid file", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody), chmod("f", 0o6755)},
		who: asNobody, act: []op{chown("f", -1, -1)}, check: []string{"f"}},
	{name: "chown -1 -1 by root", setup: []op{create("f", 0o644), chmod("f", 0o6755)},
		who: asRoot, act: []op{chown("f", -1, -1)}, check: []string{"f"},
		deviation:   "without the writeback cache the kernel sends root's chown like its removal of file capabilities, which keeps set-ID bits",
		deviationIn: []CacheMode{CacheWritethrough, CacheDirect}},
	{name: "chown by root clears setuid and setgid", setup: []op{create("f", 0o644), chmod("f", 0o6755)},
		who: asRoot, act: []op{chown("f", uidOther, uidOther)}, check: []string{"f"}},
	{name: "chown by root keeps setgid without group exec", setup: []op{create("f", 0o644), chmod("f", 0o6745)},
		who: asRoot, act: []op{chown("f", uidOther, uidOther)}, check: []string{"f"}},
	{name: "chown of a setgid dir keeps its bits", setup: []op{mkdir("d", 0o755), chmod("d", 0o3777)},
		who: asRoot, act: []op{chown("d", uidOther, grp)}, check: []string{"d"}},

	// utimensat.
	{name: "utimes now by owner", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "utimes-now", Path: "f"}}, check: []string{"f"}},
	{name: "utimes now by a writer", setup: []op{create("f", 0o666), chown("f", uidOther, uidOther)},
		who: asNobody, act: []op{{Kind: "utimes-now", Path: "f"}}, check: []string{"f"}},
	{name: "utimes now by a non-writer", setup: []op{create("f", 0o644), chown("f", uidOther, uidOther)},
		who: asNobody, act: []op{op{Kind: "utimes-now", Path: "f"}.want(syscall.EACCES)}, check: []string{"f"}},
	{name: "utimes explicit by a writer", setup: []op{create("f", 0o666), chown("f", uidOther, uidOther)},
		who: asNobody, act: []op{op{Kind: "utimes", Path: "f"}.want(syscall.EPERM)}, check: []string{"f"}},
	{name: "utimes explicit by owner", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "utimes", Path: "f"}}, check: []string{"f"}},
	{name: "utimes mtime now atime omitted by a writer", setup: []op{create("f", 0o666), chown("f", uidOther, uidOther)},
		who: asNobody, act: []op{op{Kind: "utimes-omit-now", Path: "f"}.want(syscall.EPERM)}, check: []string{"f"}},
	{name: "utimes explicit by root", setup: []op{create("f", 0o644), chown("f", uidOther, uidOther)},
		who: asRoot, act: []op{{Kind: "utimes", Path: "f"}}, check: []string{"f"}},

	// Killing privileges on write and truncate.
	{name: "write by a non-owner clears setuid", setup: []op{create("f", 0o644), chown("f", uidOther, uidOther), chmod("f", 0o6777)},
		who: asNobody, act: []op{write("f", "x", 0, 0)}, check: []string{"f"}},
	{name: "write by owner clears setuid", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody), chmod("f", 0o4755)},
		who: asNobody, act: []op{write("f", "x", 0, 0)}, check: []string{"f"}},
	{name: "write by owner clears setuid and setgid", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody), chmod("f", 0o6775)},
		who: asNobody, act: []op{write("f", "xyz", 0, 0)}, check: []string{"f"}},
	{name: "write keeps setgid without group exec", setup: []op{create("f", 0o644), chown("f", uidOther, uidOther), chmod("f", 0o2666)},
		who: asNobody, act: []op{write("f", "x", 0, 0)}, check: []string{"f"}},
	{name: "write by a group member keeps setgid without group exec", setup: []op{create("f", 0o644), chown("f", uidNobody, grp), chmod("f", 0o2666)},
		who: asOther, act: []op{write("f", "x", 0, 0)}, check: []string{"f"}},
	{name: "write by root keeps setuid", setup: []op{create("f", 0o644), chown("f", uidOther, uidOther), chmod("f", 0o6777)},
		who: asRoot, act: []op{write("f", "x", 0, 0)}, check: []string{"f"}},
	{name: "truncate by a non-owner clears setuid", setup: []op{write("f", "abc", 0, unix.O_CREAT), chown("f", uidOther, uidOther), chmod("f", 0o6777)},
		who: asNobody, act: []op{{Kind: "truncate", Path: "f", Off: 1}}, check: []string{"f"}},
	{name: "truncate by a non-member clears setgid without group exec", setup: []op{write("f", "abc", 0, unix.O_CREAT), chown("f", uidOther, grp), chmod("f", 0o2666)},
		who: asNobody, act: []op{{Kind: "truncate", Path: "f", Off: 1}}, check: []string{"f"}},
	{name: "truncate by a member keeps setgid without group exec", setup: []op{write("f", "abc", 0, unix.O_CREAT), chown("f", uidNobody, grp), chmod("f", 0o2666)},
		who: asOther, act: []op{{Kind: "truncate", Path: "f", Off: 1}, write("f", "", 0, unix.O_TRUNC)}, check: []string{"f"}},
	{name: "O_TRUNC by a non-member clears setgid without group exec", setup: []op{write("f", "abc", 0, unix.O_CREAT), chown("f", uidOther, grp), chmod("f", 0o2666)},
		who: asNobody, act: []op{write("f", "", 0, unix.O_TRUNC)}, check: []string{"f"}},
	{name: "O_TRUNC by a non-owner clears setuid", setup: []op{write("f", "abc", 0, unix.O_CREAT), chown("f", uidOther, uidOther), chmod("f", 0o6777)},
		who: asNobody, act: []op{write("f", "", 0, unix.O_TRUNC)}, check: []string{"f"}},

	// Writes through write-only descriptors, by users who may not read.
	{name: "pwrite to a write-only file", setup: []op{write("f", strings.Repeat("a", 5000), 0, unix.O_CREAT), chmod("f", 0o622),
		chown("f", uidOther, uidOther), {Kind: "dropcache", Path: "f"}},
		who: asNobody, act: []op{write("f", "0123456789", 100, 0), op{Kind: "read", Path: "f"}.want(syscall.EACCES)}, check: []string{"f"}},
	{name: "echo >> a write-only file", setup: []op{write("f", "old\n", 0, unix.O_CREAT), chown("f", uidOther, uidOther), chmod("f", 0o622),
		{Kind: "dropcache", Path: "f"}},
		who: asNobody, act: []op{{Kind: "sh", Data: "echo hello >> f"}}, check: []string{"f"}},
	{name: "O_APPEND to a write-only file", setup: []op{write("f", "old\n", 0, unix.O_CREAT), chown("f", uidOther, uidOther), chmod("f", 0o622),
		{Kind: "dropcache", Path: "f"}},
		who: asNobody, act: []op{write("f", "new\n", 0, unix.O_APPEND), write("f", "more\n", 1, unix.O_APPEND)}, check: []string{"f"}},

	// Modes asked for at creation, and open flags.
	{name: "create and mkdir with every mode bit", setup: []op{mkdir("d", 0o777)},
		who: asNobody, act: []op{create("d/f", 0o7777), mkdir("d/s", 0o7777)}, check: []string{"d/f", "d/s"}},
	{name: "chmod sticky on a file", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{chmod("f", 0o1644)}, check: []string{"f"}},
	{name: "lchown of a symlink by root", setup: []op{create("f", 0o644), {Kind: "symlink", Data: "f", Path: "l"}},
		who: asRoot, act: []op{chown("l", uidOther, grp)}, check: []string{"f", "l"}},
	{name: "O_RDONLY|O_TRUNC", setup: []op{write("f", "abc", 0, unix.O_CREAT), chmod("f", 0o666), write("g", "abc", 0, unix.O_CREAT), chmod("g", 0o644)},
		who: asNobody, act: []op{{Kind: "open", Path: "f", Flags: unix.O_RDONLY | unix.O_TRUNC}, op{Kind: "open", Path: "g", Flags: unix.O_RDONLY | unix.O_TRUNC}.want(syscall.EACCES)},
		check: []string{"f", "g"}},
	{name: "O_CREAT|O_EXCL of an existing name, O_CREAT of a directory", setup: []op{create("f", 0o644), mkdir("d", 0o777)},
		who: asNobody, act: []op{op{Kind: "open", Path: "f", Flags: unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY, Mode: 0o644}.want(syscall.EEXIST),
			op{Kind: "open", Path: "d", Flags: unix.O_CREAT | unix.O_RDONLY, Mode: 0o644}.want(syscall.EISDIR)}, check: []string{"f", "d"}},

	{name: "access", setup: []op{create("f", 0o644), create("x", 0o755)},
		who: asNobody, act: []op{{Kind: "access", Path: "f", Uid: unix.R_OK}, op{Kind: "access", Path: "f", Uid: unix.W_OK}.want(syscall.EACCES),
			op{Kind: "access", Path: "f", Uid: unix.X_OK}.want(syscall.EACCES), {Kind: "access", Path: "x", Uid: unix.X_OK}}, check: []string{"f"}},
	{name: "access by root", setup: []op{create("f", 0o000), create("x", 0o100)},
		who: asRoot, act: []op{{Kind: "access", Path: "f", Uid: unix.R_OK | unix.W_OK}, op{Kind: "access", Path: "f", Uid: unix.X_OK}.want(syscall.EACCES),
			{Kind: "access", Path: "x", Uid: unix.X_OK}}, check: []string{"f", "x"}},
	{name: "utimes of a symlink", setup: []op{create("f", 0o644), {Kind: "symlink", Data: "f", Path: "l"}, chown("l", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "utimes-nofollow", Path: "l"}}, check: []string{"f", "l"}},
	// Following a symlink reads it, which tmpfs records in its access
	// time and holefs (noatime) does not: the link itself is not checked.
	{name: "utimes through a symlink", setup: []op{create("f", 0o644), {Kind: "symlink", Data: "f", Path: "l"}, chown("l", uidNobody, uidNobody)},
		who: asNobody, act: []op{op{Kind: "utimes", Path: "l"}.want(syscall.EPERM)}, check: []string{"f"}},
	{name: "user xattr by a writer who is not the owner", setup: []op{create("f", 0o666), chown("f", uidOther, uidOther)},
		who: asNobody, act: []op{{Kind: "setxattr", Path: "f", Data: "v"}, {Kind: "removexattr", Path: "f"}}, check: []string{"f"}},
	{name: "chown of a setgid dir by its owner", setup: []op{mkdir("d", 0o755), chown("d", uidOther, uidOther), chmod("d", 0o2775)},
		who: asOther, act: []op{chown("d", -1, grp), chown("d", -1, uidOther)}, check: []string{"d"}},

	// Set-group-ID directories.
	{name: "create in a setgid dir", setup: []op{mkdir("d", 0o777), chown("d", 0, grp), chmod("d", 0o2777)},
		who: asNobody, act: []op{create("d/f", 0o2755)}, check: []string{"d", "d/f"}},
	{name: "create in a setgid dir, creator in the group", setup: []op{mkdir("d", 0o777), chown("d", 0, grp), chmod("d", 0o2777)},
		who: asOther, act: []op{create("d/f", 0o2755)}, check: []string{"d", "d/f"}},
	{name: "mkdir in a setgid dir", setup: []op{mkdir("d", 0o777), chown("d", 0, grp), chmod("d", 0o2777)},
		who: asNobody, act: []op{mkdir("d/s", 0o755), mkdir("d/s/t", 0o700)}, check: []string{"d", "d/s", "d/s/t"}},
	{name: "create and mkdir by root in a setgid dir", setup: []op{mkdir("d", 0o777), chown("d", uidOther, grp), chmod("d", 0o2775)},
		who: asRoot, act: []op{create("d/f", 0o2755), mkdir("d/s", 0o700)}, check: []string{"d", "d/f", "d/s"}},
	{name: "symlink in a setgid dir", setup: []op{mkdir("d", 0o777), chown("d", 0, grp), chmod("d", 0o2777)},
		who: asNobody, act: []op{{Kind: "symlink", Data: "target", Path: "d/l"}}, check: []string{"d", "d/l"}},

	// Sticky directories.
	{name: "sticky: unlink another's file", setup: []op{mkdir("d", 0o777), chmod("d", 0o1777), create("d/f", 0o666), chown("d/f", uidOther, uidOther)},
		who: asNobody, act: []op{op{Kind: "unlink", Path: "d/f"}.want(syscall.EPERM)}, check: []string{"d", "d/f"}},
	{name: "sticky: unlink own file", setup: []op{mkdir("d", 0o777), chmod("d", 0o1777), create("d/f", 0o644), chown("d/f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "unlink", Path: "d/f"}}, check: []string{"d", "d/f"}},
	{name: "sticky: the dir's owner unlinks another's file", setup: []op{mkdir("d", 0o777), chown("d", uidNobody, uidNobody), chmod("d", 0o1777),
		create("d/f", 0o644), chown("d/f", uidOther, uidOther)},
		who: asNobody, act: []op{{Kind: "unlink", Path: "d/f"}}, check: []string{"d", "d/f"}},
	{name: "sticky: rename another's file", setup: []op{mkdir("d", 0o777), chmod("d", 0o1777), create("d/f", 0o666), chown("d/f", uidOther, uidOther)},
		who: asNobody, act: []op{op{Kind: "rename", Path: "d/f", To: "d/g"}.want(syscall.EPERM)}, check: []string{"d", "d/f", "d/g"}},
	{name: "sticky: rename over another's file", setup: []op{mkdir("d", 0o777), chmod("d", 0o1777), create("d/f", 0o644), chown("d/f", uidNobody, uidNobody),
		create("d/g", 0o666), chown("d/g", uidOther, uidOther)},
		who: asNobody, act: []op{op{Kind: "rename", Path: "d/f", To: "d/g"}.want(syscall.EPERM)}, check: []string{"d", "d/f", "d/g"}},
	{name: "sticky: rmdir another's dir", setup: []op{mkdir("d", 0o777), chmod("d", 0o1777), mkdir("d/s", 0o777), chown("d/s", uidOther, uidOther)},
		who: asNobody, act: []op{op{Kind: "rmdir", Path: "d/s"}.want(syscall.EPERM)}, check: []string{"d", "d/s"}},
	{name: "sticky: root unlinks another's file", setup: []op{mkdir("d", 0o777), chmod("d", 0o1777), create("d/f", 0o644), chown("d/f", uidOther, uidOther)},
		who: asRoot, act: []op{{Kind: "unlink", Path: "d/f"}}, check: []string{"d", "d/f"}},

	// Search and directory permissions.
	{name: "stat through a dir without search permission", setup: []op{mkdir("d", 0o766), create("d/f", 0o644)},
		who: asNobody, act: []op{op{Kind: "stat", Path: "d/f"}.want(syscall.EACCES), op{Kind: "readdir", Path: "d"}}, check: []string{"d"}},
	{name: "search permission on every component", setup: []op{mkdir("a", 0o777), mkdir("a/b", 0o770), mkdir("a/b/c", 0o777), create("a/b/c/f", 0o666)},
		who: asNobody, act: []op{op{Kind: "stat", Path: "a/b/c/f"}.want(syscall.EACCES), write("a/b/c/f", "x", 0, 0).want(syscall.EACCES),
			op{Kind: "unlink", Path: "a/b/c/f"}.want(syscall.EACCES)}, check: []string{"a/b/c/f"}},
	{name: "search permission through group", setup: []op{mkdir("a", 0o777), mkdir("a/b", 0o710), chown("a/b", 0, grp), create("a/b/f", 0o644)},
		who: asOther, act: []op{{Kind: "stat", Path: "a/b/f"}, op{Kind: "readdir", Path: "a/b"}.want(syscall.EACCES)}, check: []string{"a/b/f"}},
	{name: "readdir without read permission", setup: []op{mkdir("d", 0o711), create("d/f", 0o644)},
		who: asNobody, act: []op{op{Kind: "readdir", Path: "d"}.want(syscall.EACCES), {Kind: "read", Path: "d/f"}}, check: []string{"d"}},
	{name: "create in a dir without write permission", setup: []op{mkdir("d", 0o755)},
		who: asNobody, act: []op{create("d/f", 0o644).want(syscall.EACCES), mkdir("d/s", 0o755).want(syscall.EACCES),
			op{Kind: "symlink", Data: "x", Path: "d/l"}.want(syscall.EACCES)}, check: []string{"d"}},
	{name: "create in a write-and-search-only dir", setup: []op{mkdir("d", 0o733)},
		who: asNobody, act: []op{create("d/f", 0o644), op{Kind: "readdir", Path: "d"}.want(syscall.EACCES)}, check: []string{"d", "d/f"}},
	{name: "unlink and rename in a dir without write permission", setup: []op{mkdir("d", 0o755), create("d/f", 0o666), mkdir("e", 0o777)},
		who: asNobody, act: []op{op{Kind: "unlink", Path: "d/f"}.want(syscall.EACCES), op{Kind: "rename", Path: "d/f", To: "e/f"}.want(syscall.EACCES),
			op{Kind: "link", Path: "d/f", To: "e/f"}}, check: []string{"d", "d/f", "e", "e/f"}},
	// protected_hardlinks: linking another's file one cannot write is EPERM.
	{name: "link another's file", setup: []op{create("f", 0o644), mkdir("d", 0o777)},
		who: asNobody, act: []op{op{Kind: "link", Path: "f", To: "d/f"}.want(syscall.EPERM)}, check: []string{"f", "d"}},
	{name: "open without permission", setup: []op{create("r", 0o600), create("w", 0o444), create("x", 0o644)},
		who: asNobody, act: []op{op{Kind: "read", Path: "r"}.want(syscall.EACCES), write("w", "x", 0, 0).want(syscall.EACCES),
			op{Kind: "truncate", Path: "x"}.want(syscall.EACCES), op{Kind: "setxattr", Path: "x", Data: "v"}.want(syscall.EACCES)}, check: []string{"r", "w", "x"}},
	{name: "trusted xattr by a user", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{op{Kind: "setxattr", Path: "f", Name: "trusted.x", Data: "v"}.want(syscall.EPERM)}, check: []string{"f"}},
	{name: "ftruncate and utimes of a dir by a user", setup: []op{create("f", 0o666), mkdir("d", 0o777), chown("d", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "ftruncate", Path: "f", Off: 10}, {Kind: "utimes", Path: "d"}, op{Kind: "utimes", Path: "f"}.want(syscall.EPERM)},
		check: []string{"f", "d"}},
	{name: "root searches a dir without permissions", setup: []op{mkdir("d", 0o000), create("d/f", 0o000)},
		who: asRoot, act: []op{{Kind: "stat", Path: "d/f"}, {Kind: "read", Path: "d/f"}, write("d/f", "x", 0, 0)}, check: []string{"d/f"}},
	{name: "rename a dir of another's into another dir", setup: []op{mkdir("a", 0o777), mkdir("a/s", 0o755), chown("a/s", uidOther, uidOther), mkdir("b", 0o777)},
		who: asNobody, act: []op{op{Kind: "rename", Path: "a/s", To: "b/s"}.want(syscall.EACCES)}, check: []string{"a", "a/s", "b"}},

	// Times of what an operation changes.
	{name: "times: write", setup: []op{mkdir("d", 0o777), write("d/f", "abc", 0, unix.O_CREAT), chmod("d/f", 0o666)},
		who: asNobody, act: []op{write("d/f", "x", 1, 0)}, check: []string{"d", "d/f"}},
	{name: "times: truncate", setup: []op{mkdir("d", 0o777), write("d/f", "abc", 0, unix.O_CREAT), chown("d/f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "truncate", Path: "d/f", Off: 1}}, check: []string{"d", "d/f"}},
	{name: "times: truncate to the same size", setup: []op{write("f", "abc", 0, unix.O_CREAT), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "truncate", Path: "f", Off: 3}}, check: []string{"f"},
		deviation:   "the kernel owns the times of a file it caches and stamps a truncation only when the size changes",
		deviationIn: []CacheMode{CacheWriteback}},
	{name: "times: O_TRUNC", setup: []op{write("f", "abc", 0, unix.O_CREAT), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{write("f", "", 0, unix.O_TRUNC)}, check: []string{"f"}},
	{name: "times: O_TRUNC of an empty file", setup: []op{create("f", 0o644), chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{write("f", "", 0, unix.O_TRUNC)}, check: []string{"f"}},
	{name: "times: chmod", setup: []op{mkdir("d", 0o777), create("d/f", 0o644), chown("d/f", uidNobody, uidNobody)},
		who: asNobody, act: []op{chmod("d/f", 0o640)}, check: []string{"d", "d/f"}},
	{name: "times: chown", setup: []op{mkdir("d", 0o777), create("d/f", 0o644), chown("d/f", uidNobody, grp)},
		who: asNobody, act: []op{chown("d/f", -1, uidNobody)}, check: []string{"d", "d/f"}},
	{name: "times: create", setup: []op{mkdir("d", 0o777)},
		who: asNobody, act: []op{create("d/f", 0o644)}, check: []string{"d", "d/f"}},
	{name: "times: mkdir", setup: []op{mkdir("d", 0o777)},
		who: asNobody, act: []op{mkdir("d/s", 0o755)}, check: []string{"d", "d/s"}},
	{name: "times: symlink", setup: []op{mkdir("d", 0o777)},
		who: asNobody, act: []op{{Kind: "symlink", Data: "t", Path: "d/l"}}, check: []string{"d", "d/l"}},
	{name: "times: link", setup: []op{mkdir("d", 0o777), mkdir("e", 0o777), create("d/f", 0o644), chown("d/f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "link", Path: "d/f", To: "e/g"}}, check: []string{"d", "d/f", "e", "e/g"}},
	{name: "times: unlink", setup: []op{mkdir("d", 0o777), create("d/f", 0o644), {Kind: "link", Path: "d/f", To: "keep"}},
		who: asNobody, act: []op{{Kind: "unlink", Path: "d/f"}}, check: []string{"d", "keep"}},
	{name: "times: rmdir", setup: []op{mkdir("d", 0o777), mkdir("d/s", 0o777)},
		who: asNobody, act: []op{{Kind: "rmdir", Path: "d/s"}}, check: []string{"d"}},
	{name: "times: rename in a dir", setup: []op{mkdir("d", 0o777), create("d/f", 0o644)},
		who: asNobody, act: []op{{Kind: "rename", Path: "d/f", To: "d/g"}}, check: []string{"d", "d/g"}},
	{name: "times: rename across dirs", setup: []op{mkdir("d", 0o777), mkdir("e", 0o777), create("d/f", 0o644)},
		who: asNobody, act: []op{{Kind: "rename", Path: "d/f", To: "e/f"}}, check: []string{"d", "e", "e/f"}},
	{name: "times: rename a dir across dirs", setup: []op{mkdir("d", 0o777), mkdir("e", 0o777), mkdir("d/s", 0o777)},
		who: asNobody, act: []op{{Kind: "rename", Path: "d/s", To: "e/s"}}, check: []string{"d", "e", "e/s"}},
	// The inodes renamed and replaced are checked through other links: a
	// name's times before and after would be two inodes'.
	{name: "times: rename over a file", setup: []op{mkdir("d", 0o777), create("d/f", 0o644), create("d/g", 0o644),
		{Kind: "link", Path: "d/f", To: "src"}, {Kind: "link", Path: "d/g", To: "dst"}},
		who: asNobody, act: []op{{Kind: "rename", Path: "d/f", To: "d/g"}}, check: []string{"d", "src", "dst"}},
	{name: "times: exchange", setup: []op{mkdir("d", 0o777), mkdir("e", 0o777), create("d/f", 0o644), create("e/g", 0o644),
		{Kind: "link", Path: "d/f", To: "f"}, {Kind: "link", Path: "e/g", To: "g"}},
		who: asNobody, act: []op{{Kind: "exchange", Path: "d/f", To: "e/g"}}, check: []string{"d", "e", "f", "g"}},
	{name: "times: setxattr", setup: []op{mkdir("d", 0o777), create("d/f", 0o644), chown("d/f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "setxattr", Path: "d/f", Data: "v"}}, check: []string{"d", "d/f"}},
	{name: "times: removexattr", setup: []op{create("f", 0o644), {Kind: "setxattr", Path: "f", Data: "v"}, chown("f", uidNobody, uidNobody)},
		who: asNobody, act: []op{{Kind: "removexattr", Path: "f"}}, check: []string{"f"}},
	{name: "times: mkfifo", setup: []op{mkdir("d", 0o777)},
		who: asNobody, act: []op{{Kind: "mkfifo", Path: "d/p", Mode: 0o644}}, check: []string{"d", "d/p"}},
	{name: "times: failed operations change nothing", setup: []op{mkdir("d", 0o755), create("d/f", 0o644)},
		who: asNobody, act: []op{create("d/g", 0o644).want(syscall.EACCES), op{Kind: "unlink", Path: "d/f"}.want(syscall.EACCES),
			chmod("d/f", 0o600).want(syscall.EPERM)}, check: []string{"d", "d/f"}},
}

func init() { helpers["conformance"] = conformanceHelper }

// conformanceHelper runs a row's action in the child process, in the
// row's directory, as the row's user: arg is the ops in JSON; it prints
// their errnos.
func conformanceHelper(arg string) error {
	var ops []op
	if err := json.Unmarshal([]byte(arg), &ops); err != nil {
		return err
	}
	waitClockTick()
	errs := make([]syscall.Errno, len(ops))
	for i, o := range ops {
		errs[i] = errnoOf(doOp(o))
	}
	return json.NewEncoder(os.Stdout).Encode(errs)
}

// waitClockTick returns once the kernel's coarse clock, which stamps
// times, has moved on: what the action changes then has times later
// than the setup's.
func waitClockTick() {
	var t0, t unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &t0)
	for t = t0; t == t0; {
		_ = unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &t)
	}
}

// errOp is what an op that does not fail with an errno returns: a shell
// command's failure.
var errOp = errors.New("failed")

// doOp runs one op.
func doOp(o op) error {
	p := o.Path
	switch o.Kind {
	case "create":
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC|o.Flags, o.Mode)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	case "write":
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC|o.Flags, 0o644)
		if err != nil {
			return err
		}
		if o.Data != "" {
			_, err = unix.Pwrite(fd, []byte(o.Data), o.Off)
		}
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		return err
	case "open":
		fd, err := unix.Open(p, o.Flags|unix.O_CLOEXEC, o.Mode)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	case "read":
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_, err = io.ReadAll(os.NewFile(uintptr(fd), p))
		unix.Close(fd)
		return err
	case "dropcache":
		// Write the file back and drop its pages, so that a write must
		// fill a page the kernel no longer has.
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Fsync(fd); err != nil {
			return err
		}
		return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	case "sh":
		if err := exec.Command("sh", "-c", o.Data).Run(); err != nil {
			return errOp
		}
		return nil
	case "mkdir":
		return unix.Mkdir(p, o.Mode)
	case "mkfifo":
		return unix.Mkfifo(p, o.Mode)
	case "chmod":
		return unix.Chmod(p, o.Mode)
	case "chown":
		return unix.Lchown(p, o.Uid, o.Gid)
	case "truncate":
		return unix.Truncate(p, o.Off)
	case "ftruncate":
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Ftruncate(fd, o.Off)
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		return err
	case "utimes-now":
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, nil, 0)
	case "utimes":
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Sec: 1e9, Nsec: 5}, {Sec: 1e9 + 1, Nsec: 7}}, 0)
	case "utimes-omit-now":
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}, 0)
	case "unlink":
		return unix.Unlink(p)
	case "rmdir":
		return unix.Rmdir(p)
	case "rename":
		return unix.Rename(p, o.To)
	case "exchange":
		return unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, o.To, unix.RENAME_EXCHANGE)
	case "link":
		return unix.Link(p, o.To)
	case "symlink":
		return unix.Symlink(o.Data, p)
	case "setxattr":
		name := "user.test"
		if o.Name != "" {
			name = o.Name
		}
		return unix.Lsetxattr(p, name, []byte(o.Data), 0)
	case "removexattr":
		return unix.Lremovexattr(p, "user.test")
	case "access":
		return unix.Faccessat(unix.AT_FDCWD, p, uint32(o.Uid), 0) // Uid carries the mode: R_OK, W_OK, X_OK
	case "utimes-nofollow":
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Sec: 1e9, Nsec: 5}, {Sec: 1e9 + 1, Nsec: 7}}, unix.AT_SYMLINK_NOFOLLOW)
	case "stat":
		var st unix.Stat_t
		return unix.Stat(p, &st)
	case "readdir":
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_, err = unix.Getdents(fd, make([]byte, 4096))
		return err
	}
	return fmt.Errorf("unknown op %q", o.Kind)
}

// outcome is what a row did to one tree.
type outcome struct {
	errs  []syscall.Errno
	files []fileState // per checked path
}

// fileState is what the row compares of a checked path.
type fileState struct {
	errno              syscall.Errno // of lstat
	mode, uid, gid     uint32
	nlink              uint64
	size               int64 // regular files and symlinks only: directory sizes differ between filesystems
	content            string
	mtimeNew, ctimeNew bool // changed by the action
	atimeSet           bool // the action set the atime to the table's explicit time
}

func (s fileState) String() string {
	if s.errno != 0 {
		return unix.ErrnoName(s.errno)
	}
	return fmt.Sprintf("mode %o uid %d gid %d nlink %d size %d mtime changed %v ctime changed %v atime set %v content %q",
		s.mode, s.uid, s.gid, s.nlink, s.size, s.mtimeNew, s.ctimeNew, s.atimeSet, s.content)
}

// lstatAll returns the lstat of each path.
func lstatAll(dir string, paths []string) ([]unix.Stat_t, []error) {
	sts := make([]unix.Stat_t, len(paths))
	errs := make([]error, len(paths))
	for i, p := range paths {
		errs[i] = unix.Lstat(filepath.Join(dir, p), &sts[i])
	}
	return sts, errs
}

// conformanceEnv is what the rows run on: trees to compare with tmpfs,
// and the test binary where every user can run it.
type conformanceEnv struct {
	bin   string
	tmpfs string
	trees map[string]string // name -> root directory
	order []string
}

// runRow runs a row in root/name and returns what it did.
func (e *conformanceEnv) runRow(t *testing.T, root string, r row) outcome {
	t.Helper()
	dir := filepath.Join(root, r.name)
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, o := range r.setup {
		o.Path = filepath.Join(dir, o.Path)
		if o.To != "" {
			o.To = filepath.Join(dir, o.To)
		}
		err := doOp(o)
		if err == nil && (o.Kind == "mkdir" || o.Kind == "create") {
			err = unix.Chmod(o.Path, o.Mode) // the umask's bits too
		}
		if err != nil {
			t.Fatalf("setup %s %s: %v", o.Kind, o.Path, err)
		}
	}
	before, _ := lstatAll(dir, r.check)
	arg, err := json.Marshal(r.act)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.bin, "-test.run=^$", string(arg))
	cmd.Dir = dir
	cmd.Env = childEnviron("conformance")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.who.Uid, Gid: r.who.Gid, Groups: r.who.Groups}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.Bytes())
	}
	var res outcome
	if err := json.Unmarshal(out, &res.errs); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	after, errs := lstatAll(dir, r.check)
	for i, p := range r.check {
		st := fileState{errno: errnoOf(errs[i])}
		if st.errno == 0 {
			a, b := after[i], before[i]
			st.mode, st.uid, st.gid, st.nlink = a.Mode, a.Uid, a.Gid, uint64(a.Nlink)
			st.mtimeNew, st.ctimeNew = a.Mtim != b.Mtim, a.Ctim != b.Ctim
			st.atimeSet = a.Atim == unix.Timespec{Sec: 1e9, Nsec: 5}
			switch a.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				st.size = a.Size
				c, err := os.ReadFile(filepath.Join(dir, p))
				if err != nil {
					t.Fatalf("reading %s: %v", p, err)
				}
				st.content = string(c)
			case unix.S_IFLNK:
				st.size = a.Size
			}
		}
		res.files = append(res.files, st)
	}
	return res
}

// TestConformance runs the table on tmpfs and on holefs mounts (in
// memory in every cache mode, and an image), compares, and checks the
// table's errnos on tmpfs.
func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it mounts a tmpfs and runs children as other users")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE on this machine (%v)", err)
	}
	bin, err := otherUserBinary(t)
	if err != nil {
		t.Fatal(err)
	}
	e := &conformanceEnv{bin: bin, tmpfs: mountTmpfs(t, 0, "mode=0777"), trees: map[string]string{}}
	reachable(t, e.tmpfs)
	add := func(name string, m *mounted) {
		reachable(t, m.dir)
		if err := os.Chmod(m.dir, 0o777); err != nil {
			t.Fatal(err)
		}
		e.trees[name] = m.dir
		e.order = append(e.order, name)
	}
	for _, mode := range []CacheMode{CacheWriteback, CacheWritethrough, CacheDirect} {
		add("memory/"+mode.String(), mountFS(t, Options{Cache: mode, AllowOther: true}))
	}
	add("image/writeback", mountOn(t, openImage(t), Options{AllowOther: true}))

	for _, r := range conformanceRows {
		t.Run(r.name, func(t *testing.T) {
			want := e.runRow(t, e.tmpfs, r)
			var mismatch []string
			for i, o := range r.act {
				if want.errs[i] != o.Want {
					t.Errorf("tmpfs: %s %s = %v, the table says %v", o.Kind, o.Path, want.errs[i], o.Want)
				}
			}
			for _, name := range e.order {
				got := e.runRow(t, e.trees[name], r)
				var diff []string
				for i, o := range r.act {
					if got.errs[i] != want.errs[i] {
						diff = append(diff, fmt.Sprintf("%s: %s %s = %v, tmpfs gives %v", name, o.Kind, o.Path, got.errs[i], want.errs[i]))
					}
				}
				for i, p := range r.check {
					if got.files[i] != want.files[i] {
						diff = append(diff, fmt.Sprintf("%s: %s: %v\n\ttmpfs: %v", name, p, got.files[i], want.files[i]))
					}
				}
				if len(diff) > 0 && r.deviates(name) {
					t.Logf("known deviation (%s):\n%s", r.deviation, strings.Join(diff, "\n"))
					continue
				}
				mismatch = append(mismatch, diff...)
			}
			if len(mismatch) == 0 {
				return
			}
			t.Error(strings.Join(mismatch, "\n"))
		})
	}
}
