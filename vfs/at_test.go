package vfs

import (
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/pagecache"
)

// TestAtOps runs the directory-relative namespace operations and checks
// their errors against Linux's.
func TestAtOps(t *testing.T) {
	f := newExtentFS(t, 64, pagecache.Options{}, nil)
	root := f.Root()
	me := Owner{Uid: 1000, Gid: 100}
	d, err := f.MkdirAt(root, "d", 0o2775, me)
	if err != nil {
		t.Fatal(err)
	}
	file, created, err := f.CreateAt(d, "f", 0o644, false, Owner{Uid: 5, Gid: 6})
	if err != nil || !created {
		t.Fatalf("CreateAt = %v, %v", created, err)
	}
	// A set-group-ID directory gives new entries its group, and new
	// directories its bit.
	sub, err := f.MkdirAt(d, "sub", 0o755, Owner{Uid: 5, Gid: 6})
	if err != nil {
		t.Fatal(err)
	}
	if a := file.Stat(); a.Uid != 5 || a.Gid != 100 || a.Mode != syscall.S_IFREG|0o644 {
		t.Errorf("file in a setgid dir: %d:%d mode %o, want 5:100 0100644", a.Uid, a.Gid, a.Mode)
	}
	if a := sub.Stat(); a.Gid != 100 || a.Mode != syscall.S_IFDIR|0o2755 {
		t.Errorf("dir in a setgid dir: gid %d mode %o, want 100 042755", a.Gid, a.Mode)
	}
	if _, err := f.SymlinkAt(d, "l", "f", me); err != nil {
		t.Fatal(err)
	}
	if err := f.LinkAt(file, root, "hard"); err != nil {
		t.Fatal(err)
	}
	if again, created, err := f.CreateAt(d, "l", 0o600, false, me); err != nil || created || again != file {
		t.Errorf("CreateAt through a symlink = %v, %v, %v; want the target, not created", again, created, err)
	}
	if got, err := f.LookupAt(d, ".."); err != nil || got != root {
		t.Errorf("LookupAt(..) = %v, %v", got, err)
	}
	if p := f.Parent(sub); p != d {
		t.Errorf("Parent(sub) = %v, want d", p)
	}
	gone, err := f.MkdirAt(root, "gone", 0o755, me)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.RmdirAt(root, "gone"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 256)
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"lookup missing", func() error { _, err := f.LookupAt(d, "nope"); return err }(), syscall.ENOENT},
		{"lookup long", func() error { _, err := f.LookupAt(d, long); return err }(), syscall.ENAMETOOLONG},
		{"lookup in file", func() error { _, err := f.LookupAt(file, "x"); return err }(), syscall.ENOTDIR},
		{"create excl", func() error { _, _, err := f.CreateAt(d, "f", 0o644, true, me); return err }(), syscall.EEXIST},
		{"create dir name", func() error { _, _, err := f.CreateAt(root, "d", 0o644, false, me); return err }(), syscall.EISDIR},
		{"create long", func() error { _, _, err := f.CreateAt(d, long, 0o644, false, me); return err }(), syscall.ENAMETOOLONG},
		{"create in removed dir", func() error { _, _, err := f.CreateAt(gone, "x", 0o644, false, me); return err }(), syscall.ENOENT},
		{"mkdir existing", func() error { _, err := f.MkdirAt(d, "f", 0o755, me); return err }(), syscall.EEXIST},
		{"mkdir in file", func() error { _, err := f.MkdirAt(file, "x", 0o755, me); return err }(), syscall.ENOTDIR},
		{"symlink empty", func() error { _, err := f.SymlinkAt(d, "e", "", me); return err }(), syscall.ENOENT},
		{"symlink existing", func() error { _, err := f.SymlinkAt(d, "f", "x", me); return err }(), syscall.EEXIST},
		{"link dir", f.LinkAt(d, root, "d2"), syscall.EPERM},
		{"link existing", f.LinkAt(file, d, "l"), syscall.EEXIST},
		{"unlink missing", f.UnlinkAt(d, "nope"), syscall.ENOENT},
		{"unlink dir", f.UnlinkAt(d, "sub"), syscall.EISDIR},
		{"rmdir file", f.RmdirAt(d, "f"), syscall.ENOTDIR},
		{"rmdir nonempty", f.RmdirAt(root, "d"), syscall.ENOTEMPTY},
		{"rename missing", f.RenameAt(d, "nope", d, "x", 0, me), syscall.ENOENT},
		{"rename flags", f.RenameAt(d, "f", d, "x", RenameNoReplace|RenameExchange, me), syscall.EINVAL},
		{"rename noreplace", f.RenameAt(d, "f", d, "l", RenameNoReplace, me), syscall.EEXIST},
		{"exchange missing", f.RenameAt(d, "f", d, "nope", RenameExchange, me), syscall.ENOENT},
		{"link dir over existing", f.LinkAt(d, root, "hard"), syscall.EEXIST},
		{"rename into own subdir", f.RenameAt(root, "d", sub, "x", 0, me), syscall.EINVAL},
		{"rename onto its parent dir", f.RenameAt(d, "f", root, "d", 0, me), syscall.ENOTEMPTY},
		{"exchange with its parent dir", f.RenameAt(d, "sub", root, "d", RenameExchange, me), syscall.EINVAL},
		{"rename dir over file", f.RenameAt(d, "sub", d, "f", 0, me), syscall.ENOTDIR},
		{"rename file over dir", f.RenameAt(d, "f", d, "sub", 0, me), syscall.EISDIR},
		{"rename into removed dir", f.RenameAt(d, "f", gone, "f", 0, me), syscall.ENOENT},
	}
	for _, tc := range tests {
		if e, ok := tc.err.(syscall.Errno); !ok || e != tc.want {
			t.Errorf("%s: err = %#v (%v), want %v", tc.name, tc.err, tc.err, tc.want)
		}
	}

	// Unlinking a file that is open keeps it until the handle closes; it
	// can then not be linked back.
	h, err := f.Open(file, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		dir  *Inode
		name string
	}{{d, "f"}, {root, "hard"}} {
		if err := f.UnlinkAt(n.dir, n.name); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.LinkAt(file, root, "back"); err != syscall.ENOENT {
		t.Errorf("LinkAt of an unlinked file = %v, want ENOENT", err)
	}
	mustWrite(t, h, []byte("still here"), 0)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	// Exchange swaps, renames move and replace.
	a, _, _ := f.CreateAt(root, "a", 0o644, false, me)
	if err := f.RenameAt(root, "a", d, "sub", RenameExchange, me); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.LookupAt(d, "sub"); got != a {
		t.Error("exchange did not swap")
	}
	if got, _ := f.LookupAt(root, "a"); got != sub || f.Parent(sub) != root {
		t.Error("exchange did not move the directory")
	}
	if err := f.RenameAt(d, "sub", d, "l", 0, me); err != nil {
		t.Fatal(err)
	}
	ents, _ := f.ReadDirInode(d)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if !slices.Equal(names, []string{"l"}) {
		t.Errorf("d holds %v, want [l]", names)
	}
}

// TestChangeHook checks what the change hook reports for every kind of
// change, that a frontend handle's changes are marked, and that the hook
// runs with no engine lock held (it takes the inode lock itself).
func TestChangeHook(t *testing.T) {
	f := newExtentFS(t, 256, pagecache.Options{}, nil)
	in, _, err := f.Create("f", 0o644, false)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Change
	hook := func(c Change) {
		// Every engine lock is free: taking the inode lock would deadlock
		// (or trip the lock checker) otherwise.
		in.lock.Lock()
		in.lock.Unlock()
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	}
	if err := f.SetChangeHook(hook); err != nil {
		t.Fatal(err)
	}
	if err := f.SetChangeHook(hook); err != syscall.EBUSY {
		t.Fatalf("second SetChangeHook = %v, want EBUSY", err)
	}
	h, err := f.Open(in, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fe, err := f.OpenFrontend(in, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	other, _, _ := f.Create("g", 0o644, false)
	g, err := f.Open(other, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	mustWrite(t, g, pattern(1, 2*pg), 0)
	ino := in.Ino()

	tests := []struct {
		name string
		do   func() error
		want []Change // nil: no report
	}{
		{"write", func() error { _, _, err := h.WriteAt(make([]byte, 3*pg), 10); return err }, []Change{{ino, 10, 3 * pg, false}}},
		{"frontend write", func() error { _, _, err := fe.WriteAt([]byte("x"), 5); return err }, []Change{{ino, 5, 1, true}}},
		{"empty write", func() error { _, _, err := h.WriteAt(nil, 5); return err }, nil},
		{"punch", func() error {
			return h.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, pg, pg)
		}, []Change{{ino, pg, pg, false}}},
		{"zero range", func() error { return h.Fallocate(unix.FALLOC_FL_ZERO_RANGE, 0, 5*pg) }, []Change{{ino, 0, 5 * pg, false}}},
		{"collapse", func() error { return h.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, pg, pg) }, []Change{{ino, pg, -1, false}}},
		{"insert", func() error { return h.Fallocate(unix.FALLOC_FL_INSERT_RANGE, pg, pg) }, []Change{{ino, pg, -1, false}}},
		{"allocate extending", func() error { return h.Fallocate(0, 0, 8*pg) }, []Change{{ino, 0, 0, false}}},
		{"allocate keep size", func() error { return h.Fallocate(unix.FALLOC_FL_KEEP_SIZE, 0, 9*pg) }, nil},
		{"failed fallocate", func() error { _ = h.Fallocate(unix.FALLOC_FL_PUNCH_HOLE, 0, pg); return nil }, nil},
		{"truncate down", func() error { return h.Truncate(2 * pg) }, []Change{{ino, 2 * pg, -1, false}}},
		{"truncate up", func() error { return fe.Truncate(4 * pg) }, []Change{{ino, 2 * pg, -1, true}}},
		{"copy into", func() error { _, err := g.CopyRange(h, 0, 100, pg); return err }, []Change{{ino, 100, pg, false}}},
		{"setattr", func() error { return in.Setattr(SetAttr{Valid: SetMode, Mode: 0o600}) }, []Change{{ino, 0, 0, false}}},
		{"frontend setattr", func() error {
			return in.Setattr(SetAttr{Valid: SetMtime, Mtime: time.Unix(1, 0), Frontend: true})
		}, []Change{{ino, 0, 0, true}}},
		{"mapped write", func() error {
			v, err := h.Mmap(pg, 2*pg, true)
			if err != nil {
				return err
			}
			defer v.Unmap()
			_, err = v.WriteAt([]byte("mm"), 7)
			return err
		}, []Change{{ino, pg + 7, 2, false}}},
		{"xattr", func() error { return in.Setxattr("user.x", nil, 0) }, nil},
	}
	for _, tc := range tests {
		mu.Lock()
		got = nil
		mu.Unlock()
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mu.Lock()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: reported %+v, want %+v", tc.name, got, tc.want)
		}
		mu.Unlock()
	}
	if err := f.SetChangeHook(nil); err != nil {
		t.Fatal(err)
	}
	got = nil
	mustWrite(t, h, []byte("y"), 0)
	if got != nil {
		t.Errorf("removed hook still called: %+v", got)
	}
}
