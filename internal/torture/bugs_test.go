package torture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// Engine bugs the torture found, each with a minimal reproduction through
// the public API. All four were fixed in commit ad0c2c6 ("Fix races found
// by the torture harness"); the reproductions stay as regression tests.
// Each probes for 3 s when the bug is absent (each showed it in under 1 s
// when present); HOLEFS_TORTURE_BUGS=1 probes 10 s each, -short skips them:
//
//	HOLEFS_TORTURE_BUGS=1 go test -race -run TestBug ./internal/torture/
//
// Note that the lock-order checker (on in this package's tests) serializes
// every lock acquisition on one mutex and hides some of these races; run
// them also with the checker off (HOLEFS_LOCKCHECK unset, and a TestMain
// without EnableForTests) when hunting a regression.

// engineBug is one reproduction: it runs for at most budget and returns a
// description of what it observed if the bug showed, "" if not.
type engineBug struct {
	name  string // the TestBug test
	about string
	probe func(tb testing.TB, budget time.Duration) string
}

var engineBugs = []engineBug{
	{"TestBugEvictFreezesTruncatedPage",
		"Mapping.evict freezes a page's count from 2 to 0 without checking that the page is still in the index, " +
			"so after a truncation dropped the index's reference the two references it freezes are the evictor's and " +
			"another user's: the page is freed under that user (nil page data, recycled buffers) and its put panics " +
			"\"page reference count below zero\"",
		probeEvictRace},
	{"TestBugMappedViewAccessWithoutReference",
		"MappedView.ReadAt/WriteAt copy from e.page without holding a page reference: a concurrent zap of the " +
			"entry (an O_DIRECT write's ZapRange, MADV_DONTNEED, Unmap) and an eviction free the page's buffer " +
			"under the copy: nil dereference, or the bytes of whatever page reuses the buffer",
		probeViewUseAfterFree},
	{"TestBugSyncMissesPageBetweenDirtyAndWriteback",
		"Mapping.writeback clears Dirty before it sets Writeback, so a concurrent fsync (WB_SYNC_ALL) can find the " +
			"page neither dirty nor under writeback and return before its data reaches the device",
		probeSyncGap},
	{"TestBugDirectWriteShrinksFile",
		"an O_DIRECT write past EOF decides it extends the file under the shared inode lock, then takes it exclusive " +
			"and sets the size to its end without re-checking: a buffered write that extended the file further in " +
			"between is cut off (size shrinks, its pages past the new EOF are written back as zeros)",
		probeDirectShrink},
}

func runBugTest(t *testing.T, name string) {
	if testing.Short() {
		t.Skip("regression probe of a fixed engine bug; not in -short runs")
	}
	budget := 3 * time.Second
	if os.Getenv("HOLEFS_TORTURE_BUGS") == "1" {
		budget = 10 * time.Second
	}
	for _, b := range engineBugs {
		if b.name == name {
			if got := b.probe(t, budget); got != "" {
				t.Errorf("engine bug is back: %s\nreproduced: %s", b.about, got)
			}
			return
		}
	}
	t.Fatalf("no engine bug %s", name)
}

func TestBugEvictFreezesTruncatedPage(t *testing.T) { runBugTest(t, t.Name()) }

func TestBugMappedViewAccessWithoutReference(t *testing.T) { runBugTest(t, t.Name()) }

func TestBugSyncMissesPageBetweenDirtyAndWriteback(t *testing.T) { runBugTest(t, t.Name()) }

func TestBugDirectWriteShrinksFile(t *testing.T) { runBugTest(t, t.Name()) }

// loops runs each fn in a loop on its own goroutine until budget passes or
// one of them reports something (a non-empty string, or a panic), and
// returns the first report.
func loops(budget time.Duration, fns ...func() string) string {
	var stop atomic.Bool
	var once sync.Once
	var found string
	report := func(s string) {
		once.Do(func() { found = s })
		stop.Store(true)
	}
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					report(fmt.Sprintf("panic: %v", r))
				}
			}()
			for !stop.Load() {
				if s := fn(); s != "" {
					report(s)
				}
			}
		}()
	}
	deadline := time.After(budget)
	for !stop.Load() {
		select {
		case <-deadline:
			stop.Store(true)
		case <-time.After(time.Millisecond):
		}
	}
	wg.Wait()
	return found
}

// probeFS opens an in-memory filesystem for a probe. A probe that found a
// bug may leave the filesystem broken (a page lock held by a goroutine
// that panicked); it is then not closed.
func probeFS(tb testing.TB) *holefs.FS {
	fsys, err := holefs.Open("", holefs.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return fsys
}

func probeFile(tb testing.TB, fsys *holefs.FS, name string, flag int) *holefs.File {
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|flag, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// probeEvictRace: a clean cached page punched while two FADV_DONTNEED
// callers try to evict it. Reproduces in milliseconds.
func probeEvictRace(tb testing.TB, budget time.Duration) string {
	fsys := probeFS(tb)
	f := probeFile(tb, fsys, "f", 0)
	page := bytes.Repeat([]byte{'x'}, BlockSize)
	got := loops(budget,
		func() string {
			_, _ = f.WriteAt(page, 0)
			_ = f.Sync() // clean and cached
			_ = f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, BlockSize)
			return ""
		},
		func() string { _ = f.Fadvise(0, BlockSize, unix.FADV_DONTNEED); return "" },
		func() string { _ = f.Fadvise(0, BlockSize, unix.FADV_DONTNEED); return "" },
	)
	if got == "" {
		_ = f.Close()
		_ = fsys.Close()
	}
	return got
}

// probeViewUseAfterFree: a view reads a page while O_DIRECT writes of the
// same data zap the view and evict the page, and another file's reads
// reuse freed page buffers.
func probeViewUseAfterFree(tb testing.TB, budget time.Duration) string {
	fsys := probeFS(tb)
	pageA := bytes.Repeat([]byte{'A'}, BlockSize)
	a := probeFile(tb, fsys, "a", 0)
	b := probeFile(tb, fsys, "b", 0)
	for _, f := range []*holefs.File{a, b} {
		if _, err := f.WriteAt(pageA, 0); err != nil {
			tb.Fatal(err)
		}
		_ = f.Sync()
	}
	d := probeFile(tb, fsys, "a", syscall.O_DIRECT)
	v, err := a.Mmap(0, BlockSize, false)
	if err != nil {
		tb.Fatal(err)
	}
	got := loops(budget,
		func() string {
			buf := make([]byte, BlockSize)
			if _, err := v.ReadAt(buf, 0); err != nil {
				return "view read: " + err.Error()
			}
			if !bytes.Equal(buf, pageA) {
				return fmt.Sprintf("view read returned %q...", buf[:8])
			}
			return ""
		},
		func() string { _, _ = d.WriteAt(pageA, 0); return "" },
		func() string {
			buf := make([]byte, BlockSize)
			_ = b.Fadvise(0, 0, unix.FADV_DONTNEED)
			_, _ = b.ReadAt(buf, 0)
			return ""
		},
	)
	if got == "" {
		_ = v.Unmap()
		for _, f := range []*holefs.File{a, b, d} {
			_ = f.Close()
		}
		_ = fsys.Close()
	}
	return got
}

// probeSyncGap: write, fsync, then read the device with O_DIRECT, while
// FADV_DONTNEED keeps starting non-sync writeback of the page.
func probeSyncGap(tb testing.TB, budget time.Duration) string {
	fsys := probeFS(tb)
	f := probeFile(tb, fsys, "f", 0)
	d := probeFile(tb, fsys, "f", syscall.O_DIRECT)
	var n uint64
	page, got := make([]byte, BlockSize), make([]byte, BlockSize)
	res := loops(budget,
		func() string {
			n++
			binary.LittleEndian.PutUint64(page, n)
			if _, err := f.WriteAt(page, 0); err != nil {
				return "write: " + err.Error()
			}
			if err := f.Sync(); err != nil {
				return "fsync: " + err.Error()
			}
			if _, err := d.ReadAt(got, 0); err != nil {
				return "O_DIRECT read: " + err.Error()
			}
			if g := binary.LittleEndian.Uint64(got); g != n {
				return fmt.Sprintf("fsync returned, yet the device holds write %d, not %d", g, n)
			}
			return ""
		},
		func() string { _ = f.Fadvise(0, 0, unix.FADV_DONTNEED); return "" },
		func() string { _ = f.Fadvise(0, 0, unix.FADV_DONTNEED); return "" },
	)
	_ = f.Close()
	_ = d.Close()
	_ = fsys.Close()
	return res
}

// probeDirectShrink: an O_DIRECT write extending a one-block file to two
// blocks races a buffered write extending it to six.
func probeDirectShrink(tb testing.TB, budget time.Duration) string {
	fsys := probeFS(tb)
	f := probeFile(tb, fsys, "f", 0)
	d := probeFile(tb, fsys, "f", syscall.O_DIRECT)
	page := bytes.Repeat([]byte{'x'}, BlockSize)
	res := loops(budget, func() string {
		if err := f.Truncate(BlockSize); err != nil {
			return "truncate: " + err.Error()
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = d.WriteAt(page, BlockSize) }()   // to 2 blocks
		go func() { defer wg.Done(); _, _ = f.WriteAt(page, 5*BlockSize) }() // to 6 blocks
		wg.Wait()
		if st, _ := f.Stat(); st.Size() != 6*BlockSize {
			return fmt.Sprintf("both writes returned, file size %d, want %d", st.Size(), 6*BlockSize)
		}
		return ""
	})
	_ = f.Close()
	_ = d.Close()
	_ = fsys.Close()
	return res
}
