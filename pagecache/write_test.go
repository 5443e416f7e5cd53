package pagecache

import (
	"bytes"
	"errors"
	"math"
	"sync"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockmap/memfs"
	"github.com/holefs/holefs/internal/lockcheck"
)

// TestWriteReadsPartialPages: a write of part of a page inside the file
// reads the page first; a write of whole pages, or past EOF, does not.
func TestWriteReadsPartialPages(t *testing.T) {
	tests := []struct {
		name      string
		off, n    int64
		wantReads int64
	}{
		{"whole page", pg, pg, 0},
		{"two whole pages", 0, 2 * pg, 0},
		{"partial page inside", pg + 5, 10, 1},
		{"straddling two pages", pg - 5, 10, 2},
		{"partial head, whole tail", pg + 100, 2*pg - 100, 1},
		{"partial page past EOF", 5*pg + 7, 10, 0},
		{"partial page holding EOF", 3*pg + 10, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{}, 64)
			data := pattern(70, 3*pg+100)
			e.populate(t, data)
			src := pattern(71, int(tt.n))
			reads := e.dev.Reads()
			e.write(t, src, tt.off)
			if d := e.dev.Reads() - reads; d != tt.wantReads {
				t.Errorf("write read %d blocks, want %d", d, tt.wantReads)
			}
			want := bytes.Clone(data)
			if end := tt.off + tt.n; end > int64(len(want)) {
				want = append(want, make([]byte, end-int64(len(want)))...)
			}
			copy(want[tt.off:], src)
			checkBytes(t, e.readAll(t, 0, len(want), nil), want, "file after write")
		})
	}
}

// TestWriteExtendsSize: Write itself moves EOF past what it copied, page by
// page, so writeback that runs in the middle of an extending write (memory
// pressure, dirty throttling, the flusher, a concurrent Sync) never takes
// the new pages for pages past EOF and writes them as zeros.
func TestWriteExtendsSize(t *testing.T) {
	e := newEnv(t, Options{CacheBytes: smallCache}, 256)
	data := pattern(72, 100*pg+10) // more than the cache: reclaim writes back mid-write
	e.host.Lock()
	if err := e.m.Blocks().Allocate(0, 101); err != nil {
		t.Fatal(err)
	}
	n, err := e.m.Write(data, 0)
	sizeAfterWrite := e.m.Size()
	e.m.SetSize(int64(n)) // what the VFS does after Write
	e.host.Unlock()
	if err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if e.c.Stats().WritebackPages == 0 {
		t.Fatal("setup: nothing was written back during the write")
	}
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	e.m.InvalidateClean(0, maxPageIdx+1)
	checkBytes(t, e.readAll(t, 0, len(data), nil), data, "file re-read from the device")
	if sizeAfterWrite != int64(len(data)) {
		t.Fatalf("Size right after Write = %d, want %d", sizeAfterWrite, len(data))
	}
}

func TestWriteErrors(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	if _, err := e.m.Write([]byte{1}, -1); err != syscall.EINVAL {
		t.Fatalf("Write at -1 = %v, want EINVAL", err)
	}
	data := pattern(73, 2*pg)
	e.populate(t, data)
	ext, _ := e.m.Blocks().Lookup(1, 1)
	e.dev.FailRead(ext.Block, syscall.EIO)
	e.host.Lock()
	n, err := e.m.Write([]byte("x"), pg+1)
	e.host.Unlock()
	if n != 0 || !errors.Is(err, syscall.EIO) {
		t.Fatalf("partial-page Write over an unreadable page = %d, %v; want 0, EIO", n, err)
	}
	if e.m.NrDirty() != 0 {
		t.Fatal("a failed write dirtied a page")
	}
	e.dev.Clear()
	e.write(t, []byte("x"), pg+1)
	want := bytes.Clone(data)
	want[pg+1] = 'x'
	checkBytes(t, e.readAll(t, 0, 2*pg, nil), want, "file after the retried write")
}

func TestZeroTail(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.write(t, pattern(74, pg), 0)
	e.host.Lock()
	e.m.ZeroTail(pg) // aligned: nothing to do
	e.m.ZeroTail(5 * pg)
	e.m.ZeroTail(1000)
	e.host.Unlock()
	got := e.readAll(t, 0, pg, nil)
	checkBytes(t, got[:1000], pattern(74, 1000), "bytes before the tail")
	if !bytes.Equal(got[1000:], make([]byte, pg-1000)) {
		t.Fatal("ZeroTail(1000) left bytes after 1000")
	}
}

// TestWriteConcurrentReaders: readers of a page being rewritten whole see
// the old or the new page, never a mix (the content lock), and -race sees
// no race between the copies.
func TestWriteConcurrentReaders(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.write(t, bytes.Repeat([]byte{1}, pg), 0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, pg)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.m.Read(buf, 0, nil); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf, bytes.Repeat(buf[:1], pg)) {
					t.Error("reader saw a torn page")
					return
				}
			}
		}()
	}
	for i := 2; i < 200; i++ {
		e.write(t, bytes.Repeat([]byte{byte(i)}, pg), 0)
	}
	close(stop)
	wg.Wait()
}

// TestUnevictableMapping: a memory backend's pages are the storage: never
// written back, never evicted, not counted against the cache limit.
func TestUnevictableMapping(t *testing.T) {
	c := NewCache(Options{CacheBytes: smallCache})
	defer c.Close()
	host := &lockcheck.RWMutex{}
	host.Init(lockcheck.RankInode, 2)
	m := c.NewMapping(MappingOptions{Blocks: memfs.New(1024).NewFile(0), Host: host, Unevictable: true, Key: 2})
	const nPages = 200 // three times the cache limit
	data := pattern(75, nPages*pg)
	host.Lock()
	if err := m.Blocks().Allocate(0, nPages); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(data, 0); err != nil {
		t.Fatal(err)
	}
	m.SetSize(nPages * pg)
	host.Unlock()
	s := c.Stats()
	if s.UnevictablePages != nPages || s.Pages != 0 || s.DirtyPages != 0 || m.NrDirty() != 0 {
		t.Fatalf("memory pages accounted as %+v; want %d unevictable, none evictable or dirty", s, nPages)
	}
	if err := m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	if n := m.InvalidateClean(0, maxPageIdx+1); n != 0 {
		t.Fatalf("InvalidateClean dropped %d memory pages", n)
	}
	buf := make([]byte, nPages*pg)
	if n, err := m.Read(buf, 0, new(ReadaheadState)); n != len(buf) || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	checkBytes(t, buf, data, "memory file")
	host.Lock()
	inv := m.LockRemove(0, math.MaxInt64)
	m.SetSize(pg)
	if err := m.TruncateRange(pg, 1<<62); err != nil {
		t.Fatal(err)
	}
	inv.Unlock()
	host.Unlock()
	if s := c.Stats(); s.UnevictablePages != 1 || m.NrPages() != 1 {
		t.Fatalf("after truncating to one page: %d unevictable pages, NrPages %d", s.UnevictablePages, m.NrPages())
	}
}

// TestUpdateClean: after a direct write, clean cached pages of the range
// get the new bytes; dirty ones (a newer write through a view) keep theirs.
func TestUpdateClean(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(80, 2*pg), 0)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	e.write(t, pattern(81, pg), pg) // page 1 dirty again
	fresh := pattern(82, 2*pg)
	e.m.UpdateClean(0, fresh)
	want := append(bytes.Clone(fresh[:pg]), pattern(81, pg)...)
	checkBytes(t, e.readAll(t, 0, 2*pg, nil), want, "pages after UpdateClean")
}
