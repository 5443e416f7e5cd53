package holefs_test

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func createWith(t *testing.T, fsys *holefs.FS, name string, data []byte) *holefs.File {
	t.Helper()
	f := create(t, fsys, name)
	if len(data) > 0 {
		_, err := f.WriteAt(data, 0)
		must(t, err)
	}
	return f
}

func readAll(t *testing.T, f *holefs.File) []byte {
	t.Helper()
	st, err := f.Stat()
	must(t, err)
	b := make([]byte, st.Size())
	_, err = f.ReadAt(b, 0)
	must(t, err)
	return b
}

func usedBlocks(fsys *holefs.FS) int64 {
	_, total, free := fsys.Statfs()
	return total - free
}

// TestClone: a clone reads the same, shares the blocks (no new space), and
// a write to either side — buffered, mapped or direct — copies the block
// it writes and leaves the other side alone; punching a shared block drops
// one reference.
func TestClone(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	orig := append(fill('a', 3*pg), fill('b', 100)...) // a partial EOF page
	a := createWith(t, fsys, "a", orig)
	b := createWith(t, fsys, "b", nil)
	must(t, a.Sync())
	before := usedBlocks(fsys)
	must(t, a.Clone(b, 0, 0, 0)) // 0: to EOF
	if got := readAll(t, b); !bytes.Equal(got, orig) {
		t.Fatalf("clone reads %d bytes, want the source's %d", len(got), len(orig))
	}
	if used := usedBlocks(fsys); used != before {
		t.Fatalf("clone used %d new blocks, want 0", used-before)
	}

	_, err := a.WriteAt(fill('X', 10), 5)
	must(t, err)
	must(t, a.Sync())
	v, err := b.Mmap(pg, pg, true)
	must(t, err)
	_, err = v.WriteAt(fill('M', 3), 0)
	must(t, err)
	must(t, v.Sync(0, 0))
	must(t, v.Unmap())
	d, err := fsys.OpenFile("b", os.O_RDWR|syscall.O_DIRECT, 0)
	must(t, err)
	_, err = d.WriteAt(fill('D', pg), 2*pg)
	must(t, err)
	must(t, d.Close())
	must(t, a.Fadvise(0, 0, unix.FADV_DONTNEED))
	must(t, b.Fadvise(0, 0, unix.FADV_DONTNEED))

	wantA := append([]byte(nil), orig...)
	copy(wantA[5:], fill('X', 10))
	wantB := append([]byte(nil), orig...)
	copy(wantB[pg:], fill('M', 3))
	copy(wantB[2*pg:], fill('D', pg))
	if got := readAll(t, a); !bytes.Equal(got, wantA) {
		t.Errorf("source after writes to both: %q...", got[:16])
	}
	if got := readAll(t, b); !bytes.Equal(got, wantB) {
		t.Errorf("clone after writes to both: differs at %d", firstDiff(got, wantB))
	}
	// Three pages were copied on write (a's page 0, b's pages 1 and 2).
	if used := usedBlocks(fsys); used != before+3 {
		t.Errorf("%d blocks in use after three copies on write, want %d", used, before+3)
	}
	// Page 3 is still shared: punching it in a frees nothing and b keeps it.
	must(t, a.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 3*pg, pg))
	if used := usedBlocks(fsys); used != before+3 {
		t.Errorf("punching a shared block freed it: %d in use, want %d", used, before+3)
	}
	must(t, b.Fadvise(0, 0, unix.FADV_DONTNEED))
	if got := readAll(t, b); !bytes.Equal(got[3*pg:], orig[3*pg:]) {
		t.Errorf("the clone lost its copy of the block punched in the source")
	}
	must(t, b.Truncate(3*pg))
	if used := usedBlocks(fsys); used != before+2 {
		t.Errorf("dropping the last reference did not free the block: %d in use, want %d", used, before+2)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestCloneErrors(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	a := createWith(t, fsys, "a", fill('a', 4*pg))
	b := createWith(t, fsys, "b", fill('b', 4*pg))
	ro, err := fsys.OpenFile("b", os.O_RDONLY, 0)
	must(t, err)
	defer ro.Close()
	mem := newFS(t, holefs.Options{Backend: holefs.BackendMemory})
	m := createWith(t, mem, "m", fill('m', pg))
	tests := []struct {
		what  string
		err   error
		errno syscall.Errno
	}{
		{"unaligned offset", a.Clone(b, 1, 0, pg), syscall.EINVAL},
		{"unaligned length inside the file", a.Clone(b, 0, 0, pg+1), syscall.EINVAL},
		{"source offset past EOF", a.Clone(b, 8*pg, 0, pg), syscall.EINVAL},
		{"overlap in one file", a.Clone(a, 0, pg, 2*pg), syscall.EINVAL},
		{"read-only destination", a.Clone(ro, 0, 0, pg), syscall.EBADF},
		{"other filesystem", a.Clone(m, 0, 0, pg), syscall.EXDEV},
		{"memfs", m.Clone(m, 0, pg, 0), syscall.EOPNOTSUPP},
	}
	for _, tc := range tests {
		wantErrno(t, tc.err, tc.errno, tc.what)
	}
	// Nothing changed.
	if got := readAll(t, b); !bytes.Equal(got, fill('b', 4*pg)) {
		t.Error("a failed clone changed the destination")
	}
	must(t, a.Clone(a, 0, 2*pg, 2*pg)) // non-overlapping ranges of one file
}

func TestDedupe(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	data := fill('z', 4*pg)
	a := createWith(t, fsys, "a", data)
	b := createWith(t, fsys, "b", data)
	c := createWith(t, fsys, "c", append(fill('z', 3*pg), fill('y', pg)...))
	before := usedBlocks(fsys)
	must(t, a.Dedupe(b, 0, 0, 4*pg))
	if used := usedBlocks(fsys); used != before-4 {
		t.Errorf("dedupe of 4 equal pages freed %d blocks, want 4", before-used)
	}
	if err := a.Dedupe(c, 0, 0, 4*pg); !errors.Is(err, holefs.ErrDedupeDiffers) {
		t.Errorf("dedupe of different ranges: %v, want ErrDedupeDiffers", err)
	}
	if got := readAll(t, c); !bytes.Equal(got[3*pg:], fill('y', pg)) {
		t.Error("a refused dedupe changed the destination")
	}
	must(t, a.Dedupe(c, 0, 0, 3*pg))
	if got := readAll(t, b); !bytes.Equal(got, data) {
		t.Error("deduplicated file changed")
	}
}

// TestCloneBothWays: Clone(a→b) and Clone(b→a) at once take the same locks
// in the same order (inode, then invalidate, by inode number) and cannot
// deadlock.
func TestCloneBothWays(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	a := createWith(t, fsys, "a", fill('a', 8*pg))
	b := createWith(t, fsys, "b", fill('b', 8*pg))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range [][2]*holefs.File{{a, b}, {b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				off := int64(i%8) * pg
				if err := p[0].Clone(p[1], off, (off+4*pg)%(8*pg), pg); err != nil {
					t.Error(err)
					return
				}
				if _, err := p[1].WriteAt([]byte{byte(i)}, off); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Clone(a→b) and Clone(b→a) deadlocked")
	}
}

// TestCopyRangeClones: an aligned copy_file_range shares blocks.
func TestCopyRangeClones(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	a := createWith(t, fsys, "a", fill('c', 8*pg))
	b := createWith(t, fsys, "b", nil)
	must(t, a.Sync())
	before := usedBlocks(fsys)
	n, err := a.CopyRange(b, 0, 0, 8*pg)
	must(t, err)
	if n != 8*pg || usedBlocks(fsys) != before {
		t.Fatalf("copied %d bytes using %d new blocks, want %d and 0", n, usedBlocks(fsys)-before, 8*pg)
	}
	if !bytes.Equal(readAll(t, b), fill('c', 8*pg)) {
		t.Fatal("copy differs")
	}
}
