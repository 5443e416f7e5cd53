package holefs_test

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// TestDirectIO checks O_DIRECT: block-aligned offsets and lengths only,
// and coherence with the page cache in both directions.
func TestDirectIO(t *testing.T) {
	fsys := newFS(t, holefs.Options{Backend: holefs.BackendExtent})
	buffered := create(t, fsys, "f")
	direct := openFile(t, fsys, "f", syscall.O_RDWR|syscall.O_DIRECT)
	var m model

	// Alignment: EINVAL, nothing written.
	for _, c := range []struct {
		off int64
		n   int
	}{{1, pg}, {0, pg - 1}, {0, 1}, {pg / 2, pg}, {0, pg + 512}} {
		_, err := direct.WriteAt(make([]byte, c.n), c.off)
		wantErrno(t, err, syscall.EINVAL, "unaligned direct write")
		_, err = direct.ReadAt(make([]byte, c.n), c.off)
		wantErrno(t, err, syscall.EINVAL, "unaligned direct read")
	}
	if size(t, buffered) != 0 {
		t.Fatalf("unaligned direct writes changed the size to %d", size(t, buffered))
	}

	// Direct write, then buffered read sees it.
	d1 := pattern(1, 3*pg)
	if n, err := direct.WriteAt(d1, 0); n != len(d1) || err != nil {
		t.Fatalf("direct write = %d, %v", n, err)
	}
	m.write(d1, 0)
	checkContent(t, buffered, m, "buffered read after direct write")

	// The buffered read cached the pages; a direct write over them must not
	// leave the stale cached copy behind.
	d2 := pattern(2, pg)
	if _, err := direct.WriteAt(d2, pg); err != nil {
		t.Fatal(err)
	}
	m.write(d2, pg)
	checkContent(t, buffered, m, "buffered read after direct overwrite of a cached page")

	// Buffered write, not synced, then direct read sees it (and a partial
	// page write, which needs the old data, too).
	b1 := pattern(3, 100)
	writeAt(t, buffered, b1, 2*pg+50)
	m.write(b1, 2*pg+50)
	got := make([]byte, 3*pg)
	if n, err := direct.ReadAt(got, 0); n != 3*pg || err != nil {
		t.Fatalf("direct read = %d, %v", n, err)
	}
	if string(got) != string(m) {
		t.Fatal("direct read does not see the unsynced buffered write")
	}

	// Direct write extending the file; short direct read at EOF.
	d3 := pattern(4, 2*pg)
	if _, err := direct.WriteAt(d3, 5*pg); err != nil {
		t.Fatal(err)
	}
	m.write(d3, 5*pg)
	checkContent(t, buffered, m, "after extending direct write")
	got = make([]byte, 4*pg)
	if n, err := direct.ReadAt(got, 4*pg); n != 3*pg || err != io.EOF {
		t.Errorf("direct read across EOF = %d, %v; want %d, io.EOF", n, err, 3*pg)
	}
	if string(got[:3*pg]) != string(m[4*pg:]) {
		t.Error("direct read across EOF: wrong data (the hole must read as zeros)")
	}
	if n, err := direct.ReadAt(got, 7*pg); n != 0 || err != io.EOF {
		t.Errorf("direct read at EOF = %d, %v", n, err)
	}

	// Direct write over an unaligned EOF: the old tail page is rewritten
	// as a whole, and a buffered extension after it reads zeros.
	writeAt(t, buffered, []byte("tail"), 7*pg)
	m.write([]byte("tail"), 7*pg)
	if err := buffered.Truncate(7*pg + 2); err != nil {
		t.Fatal(err)
	}
	m.resize(7*pg + 2)
	if err := buffered.Truncate(8 * pg); err != nil {
		t.Fatal(err)
	}
	m.resize(8 * pg)
	got = make([]byte, pg)
	if _, err := direct.ReadAt(got, 7*pg); err != nil || string(got) != string(m[7*pg:]) {
		t.Errorf("direct read of the grown tail page: %q..., %v", got[:8], err)
	}

	// Punch then direct read: zeros.
	if err := buffered.Fallocate(punch, pg, pg); err != nil {
		t.Fatal(err)
	}
	m.zero(pg, pg)
	got = make([]byte, 2*pg)
	if _, err := direct.ReadAt(got, 0); err != nil || string(got) != string(m[:2*pg]) {
		t.Errorf("direct read after punch: %v", err)
	}
	dropCache(t, buffered)
	checkContent(t, buffered, m, "from the device at the end")

	// Direct write into fallocated (unwritten) space.
	if err := buffered.Fallocate(keep, 8*pg, 4*pg); err != nil {
		t.Fatal(err)
	}
	d4 := pattern(5, pg)
	if _, err := direct.WriteAt(d4, 9*pg); err != nil {
		t.Fatal(err)
	}
	m.resize(9 * pg)
	m.write(d4, 9*pg)
	dropCache(t, buffered)
	checkContent(t, buffered, m, "direct write into unwritten space")

	// O_DIRECT with O_APPEND appends, as on Linux.
	app := openFile(t, fsys, "f", syscall.O_WRONLY|syscall.O_APPEND|syscall.O_DIRECT)
	d5 := pattern(6, pg)
	if n, err := app.Write(d5); n != pg || err != nil {
		t.Fatalf("O_DIRECT|O_APPEND write = %d, %v", n, err)
	}
	m.write(d5, int64(len(m)))
	checkContent(t, buffered, m, "after O_DIRECT|O_APPEND write")
	// At an unaligned EOF, an O_DIRECT append is EINVAL.
	writeAt(t, buffered, []byte("x"), int64(len(m)))
	m.write([]byte("x"), int64(len(m)))
	_, err := app.Write(d5)
	wantErrno(t, err, syscall.EINVAL, "O_DIRECT|O_APPEND at an unaligned EOF")
	checkContent(t, buffered, m, "after the rejected append")
}

// TestDirectIOStaleAfterReadahead checks that a direct write is seen by
// buffered reads of pages that readahead had cached.
func TestDirectIOStaleAfterReadahead(t *testing.T) {
	fsys := newFS(t, holefs.Options{Backend: holefs.BackendExtent})
	f := create(t, fsys, "f")
	data := pattern(1, 16*pg)
	writeAt(t, f, data, 0)
	dropCache(t, f)
	// Read the whole file into the cache through readahead.
	if err := f.Fadvise(0, 0, unix.FADV_WILLNEED); err != nil {
		t.Fatal(err)
	}
	direct := openFile(t, fsys, "f", syscall.O_RDWR|syscall.O_DIRECT)
	nd := pattern(2, 4*pg)
	if _, err := direct.WriteAt(nd, 6*pg); err != nil {
		t.Fatal(err)
	}
	copy(data[6*pg:], nd)
	checkContent(t, f, data, "after direct write over readahead pages")
}

func TestDirectIOMemfs(t *testing.T) {
	fsys := newFS(t, holefs.Options{Backend: holefs.BackendMemory})
	create(t, fsys, "f").Close()
	_, err := fsys.OpenFile("f", syscall.O_RDWR|syscall.O_DIRECT, 0)
	wantErrno(t, err, syscall.EINVAL, "O_DIRECT on memfs")
	_, err = fsys.OpenFile("g", syscall.O_RDWR|syscall.O_CREAT|syscall.O_DIRECT, 0o644)
	wantErrno(t, err, syscall.EINVAL, "O_CREAT|O_DIRECT on memfs")
}

// TestDirectIOOverMappedPage: a direct write must not leave a view or the
// cache showing the old bytes of a page that was mapped when it ran.
func TestDirectIOOverMappedPage(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	f := create(t, fsys, "f")
	writeAt(t, f, pattern(1, 4*pg), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	v, err := f.Mmap(0, 4*pg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unmap()
	buf := make([]byte, pg)
	if _, err := v.ReadAt(buf, pg); err != nil { // fault page 1 in
		t.Fatal(err)
	}
	d := openFile(t, fsys, "f", os.O_RDWR|syscall.O_DIRECT)
	defer d.Close()
	want := pattern(2, pg)
	if _, err := d.WriteAt(want, pg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(buf, pg); err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("buffered read after a direct write over a mapped page: err %v, stale bytes %v", err, !bytes.Equal(buf, want))
	}
	if _, err := v.ReadAt(buf, pg); err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("view read after a direct write over its page: err %v, stale bytes %v", err, !bytes.Equal(buf, want))
	}
}

// TestCacheStatsHits: a second read of a cached page counts as a hit, the
// first as a miss.
func TestCacheStatsHits(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	f := create(t, fsys, "f")
	writeAt(t, f, pattern(3, pg), 0)
	dropCache(t, f)
	before := fsys.CacheStats()
	buf := make([]byte, pg)
	for i := 0; i < 3; i++ {
		if _, err := f.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
	}
	after := fsys.CacheStats()
	if got := after.Misses - before.Misses; got != 1 {
		t.Errorf("misses: %d, want 1", got)
	}
	if got := after.Hits - before.Hits; got != 2 {
		t.Errorf("hits: %d, want 2", got)
	}
}
