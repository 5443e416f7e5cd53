package fuse

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNamespace runs the namespace system calls through the mount and
// checks their results and errnos against Linux's.
func TestNamespace(t *testing.T) {
	m := mountFS(t, Options{})
	p := m.path
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("f"), []byte("data"), 0o644))
	must(os.Mkdir(p("d"), 0o755))
	must(os.WriteFile(p("d/g"), nil, 0o644))
	must(os.Symlink("f", p("l")))
	must(os.Symlink("nowhere", p("dangling")))
	long := strings.Repeat("x", 256)

	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"create excl existing", func() error {
			_, err := unix.Open(p("f"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
			return err
		}(), syscall.EEXIST},
		{"open missing", func() error { _, err := unix.Open(p("nope"), unix.O_RDONLY, 0); return err }(), syscall.ENOENT},
		{"open through a file", func() error { _, err := unix.Open(p("f/x"), unix.O_RDONLY, 0); return err }(), syscall.ENOTDIR},
		{"open dir for writing", func() error { _, err := unix.Open(p("d"), unix.O_RDWR, 0); return err }(), syscall.EISDIR},
		{"open long name", func() error { _, err := unix.Open(p(long), unix.O_RDONLY, 0); return err }(), syscall.ENAMETOOLONG},
		{"create long name", func() error { _, err := unix.Open(p(long), unix.O_CREAT|unix.O_WRONLY, 0o644); return err }(), syscall.ENAMETOOLONG},
		{"open dangling", func() error { _, err := unix.Open(p("dangling"), unix.O_RDONLY, 0); return err }(), syscall.ENOENT},
		{"O_NOFOLLOW on symlink", func() error { _, err := unix.Open(p("l"), unix.O_RDONLY|unix.O_NOFOLLOW, 0); return err }(), syscall.ELOOP},
		{"mkdir existing", unix.Mkdir(p("d"), 0o755), syscall.EEXIST},
		{"mkdir in missing", unix.Mkdir(p("nope/d"), 0o755), syscall.ENOENT},
		{"rmdir nonempty", unix.Rmdir(p("d")), syscall.ENOTEMPTY},
		{"rmdir file", unix.Rmdir(p("f")), syscall.ENOTDIR},
		{"rmdir missing", unix.Rmdir(p("nope")), syscall.ENOENT},
		{"unlink dir", unix.Unlink(p("d")), syscall.EISDIR},
		{"unlink missing", unix.Unlink(p("nope")), syscall.ENOENT},
		{"link dir", unix.Link(p("d"), p("d2")), syscall.EPERM},
		{"link existing", unix.Link(p("f"), p("l")), syscall.EEXIST},
		{"symlink existing", unix.Symlink("x", p("f")), syscall.EEXIST},
		{"readlink of a file", func() error { _, err := os.Readlink(p("f")); return err }(), syscall.EINVAL},
		{"rename missing", unix.Rename(p("nope"), p("x")), syscall.ENOENT},
		{"rename dir over file", unix.Rename(p("d"), p("f")), syscall.ENOTDIR},
		{"rename file over dir", unix.Rename(p("f"), p("d")), syscall.EISDIR},
		{"rename into own subdir", unix.Rename(p("d"), p("d/sub")), syscall.EINVAL},
		{"rename noreplace", unix.Renameat2(unix.AT_FDCWD, p("f"), unix.AT_FDCWD, p("l"), unix.RENAME_NOREPLACE), syscall.EEXIST},
		{"exchange with missing", unix.Renameat2(unix.AT_FDCWD, p("f"), unix.AT_FDCWD, p("nope"), unix.RENAME_EXCHANGE), syscall.ENOENT},
		{"exchange whiteout", unix.Renameat2(unix.AT_FDCWD, p("f"), unix.AT_FDCWD, p("l"), unix.RENAME_WHITEOUT|unix.RENAME_EXCHANGE), syscall.EINVAL},
		{"O_TMPFILE", func() error { _, err := unix.Open(m.dir, unix.O_TMPFILE|unix.O_RDWR, 0o600); return err }(), syscall.EOPNOTSUPP},
	}
	for _, tc := range tests {
		wantErrno(t, tc.err, tc.want, tc.name)
	}

	// Links and symlinks.
	must(os.Link(p("f"), p("d/hard")))
	var st unix.Stat_t
	must(unix.Stat(p("f"), &st))
	if st.Nlink != 2 {
		t.Errorf("nlink after link = %d, want 2", st.Nlink)
	}
	if target, err := os.Readlink(p("l")); err != nil || target != "f" {
		t.Errorf("readlink = %q, %v", target, err)
	}
	if got, err := os.ReadFile(p("l")); err != nil || string(got) != "data" {
		t.Errorf("read through symlink = %q, %v", got, err)
	}
	must(unix.Lstat(p("l"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Size != 1 {
		t.Errorf("lstat of symlink: mode %o size %d", st.Mode, st.Size)
	}

	// Rename with flags.
	must(os.WriteFile(p("a"), []byte("A"), 0o644))
	must(os.WriteFile(p("b"), []byte("B"), 0o644))
	must(unix.Renameat2(unix.AT_FDCWD, p("a"), unix.AT_FDCWD, p("b"), unix.RENAME_EXCHANGE))
	if a, _ := os.ReadFile(p("a")); string(a) != "B" {
		t.Errorf("after exchange a = %q, want B", a)
	}
	must(unix.Renameat2(unix.AT_FDCWD, p("a"), unix.AT_FDCWD, p("c"), unix.RENAME_NOREPLACE))
	must(unix.Rename(p("c"), p("d/b"))) // replaces nothing, moves across directories
	must(unix.Rename(p("b"), p("d/b"))) // replaces
	if b, _ := os.ReadFile(p("d/b")); string(b) != "A" {
		t.Errorf("after replacing rename d/b = %q, want A", b)
	}
	must(unix.Renameat2(unix.AT_FDCWD, p("d"), unix.AT_FDCWD, p("f"), unix.RENAME_EXCHANGE)) // dir <-> file
	must(unix.Stat(p("f"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("after exchanging a dir and a file, f is %o", st.Mode)
	}
	must(unix.Renameat2(unix.AT_FDCWD, p("d"), unix.AT_FDCWD, p("f"), unix.RENAME_EXCHANGE))

	// Unlink with an open handle: the data lives on until the last close.
	fd, err := unix.Open(p("d/g"), unix.O_RDWR, 0)
	must(err)
	must(unix.Unlink(p("d/g")))
	if _, err := unix.Pwrite(fd, []byte("after unlink"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || string(buf[:n]) != "after unlink" {
		t.Errorf("pread of unlinked file = %q, %v", buf[:n], err)
	}
	must(unix.Fstat(fd, &st))
	if st.Nlink != 0 {
		t.Errorf("fstat of unlinked file: nlink %d", st.Nlink)
	}
	must(unix.Close(fd))
	if _, err := os.Stat(p("d/g")); !os.IsNotExist(err) {
		t.Errorf("stat of unlinked name = %v", err)
	}
}

// TestReaddir checks listings, d_type, "." and "..", and that offsets
// stay stable while the directory changes: an entry present from opendir
// to the end is returned exactly once, however small the getdents
// buffers and whatever is created and removed between them, and seekdir
// back to a telldir position repeats the same entries.
func TestReaddir(t *testing.T) {
	m := mountFS(t, Options{})
	const n = 300
	var want []string
	for i := range n {
		name := "keep" + strings.Repeat("k", i%7) + string(rune('a'+i%26)) + itoa(i)
		want = append(want, name)
		if err := os.WriteFile(m.path(name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(m.path("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(m.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	seen := map[string]int{}
	types := map[string]uint8{}
	buf := make([]byte, 256) // a few entries per call
	var offsets []int64
	for round := 0; ; round++ {
		// Churn between reads: new names, and names gone.
		churn := m.path("churn" + itoa(round))
		if err := os.WriteFile(churn, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if round > 0 {
			_ = os.Remove(m.path("churn" + itoa(round-1)))
		}
		off, _ := unix.Seek(fd, 0, 1)
		offsets = append(offsets, off)
		nb, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if nb == 0 {
			break
		}
		for _, d := range parseDirents(buf[:nb]) {
			seen[d.name]++
			types[d.name] = d.typ
		}
	}
	for _, name := range append(slices.Clone(want), ".", "..", "sub") {
		if seen[name] != 1 {
			t.Errorf("%s seen %d times, want once", name, seen[name])
		}
	}
	if types["sub"] != unix.DT_DIR || types[want[0]] != unix.DT_REG || types["."] != unix.DT_DIR {
		t.Errorf("d_type: sub %d, file %d, . %d", types["sub"], types[want[0]], types["."])
	}
	// seekdir to a middle position reads what was read from there.
	mid := offsets[len(offsets)/2]
	if _, err := unix.Seek(fd, mid, 0); err != nil {
		t.Fatal(err)
	}
	nb, err := unix.Getdents(fd, buf)
	if err != nil || nb == 0 {
		t.Fatalf("getdents after seekdir = %d, %v", nb, err)
	}
	first := parseDirents(buf[:nb])[0].name
	if seen[first] != 1 {
		t.Errorf("seekdir back landed on %q, not an entry of the listing", first)
	}
	// rewinddir takes a new snapshot: the churn names now present appear.
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		t.Fatal(err)
	}
	names, err := readNames(fd)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(m.dir)
	if len(names) != len(ents)+2 {
		t.Errorf("after rewind %d names, os.ReadDir %d (+ . and ..)", len(names), len(ents))
	}
}

type dirent struct {
	name string
	typ  uint8
}

// parseDirents decodes getdents64 records.
func parseDirents(b []byte) []dirent {
	var out []dirent
	for len(b) > 0 {
		reclen := int(b[16]) | int(b[17])<<8
		typ := b[18]
		name := b[19:reclen]
		out = append(out, dirent{string(name[:bytes.IndexByte(name, 0)]), typ})
		b = b[reclen:]
	}
	return out
}

func readNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil || n == 0 {
			return names, err
		}
		for _, d := range parseDirents(buf[:n]) {
			names = append(names, d.name)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
