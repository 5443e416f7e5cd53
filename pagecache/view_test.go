package pagecache

import (
	"bytes"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockmap"
)

func (e *env) mmap(t *testing.T, off, n int64, writable bool) *MappedView {
	t.Helper()
	v, err := e.m.Mmap(off, n, writable)
	if err != nil {
		t.Fatalf("Mmap(%d, %d, %v): %v", off, n, writable, err)
	}
	t.Cleanup(func() { _ = v.Unmap() })
	return v
}

func viewRead(t *testing.T, v *MappedView, off int64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	if got, err := v.ReadAt(buf, off); got != n || err != nil {
		t.Fatalf("view ReadAt(%d bytes at %d) = %d, %v", n, off, got, err)
	}
	return buf
}

func viewWrite(t *testing.T, v *MappedView, p []byte, off int64) {
	t.Helper()
	if got, err := v.WriteAt(p, off); got != len(p) || err != nil {
		t.Fatalf("view WriteAt(%d bytes at %d) = %d, %v", len(p), off, got, err)
	}
}

func TestMmapArgs(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	tests := []struct {
		off, n  int64
		wantErr error
		wantLen int64
	}{
		{0, pg, nil, pg},
		{pg, 1, nil, pg},
		{0, 3*pg + 1, nil, 4 * pg},
		{1, pg, syscall.EINVAL, 0},
		{pg - 1, pg, syscall.EINVAL, 0},
		{-pg, pg, syscall.EINVAL, 0},
		{0, 0, syscall.EINVAL, 0},
		{0, -1, syscall.EINVAL, 0},
		{maxPageIdx * pg, pg, syscall.EINVAL, 0},
	}
	for _, tt := range tests {
		v, err := e.m.Mmap(tt.off, tt.n, true)
		if err != tt.wantErr {
			t.Errorf("Mmap(%d, %d) = %v, want %v", tt.off, tt.n, err, tt.wantErr)
			continue
		}
		if err == nil {
			if v.Len() != tt.wantLen {
				t.Errorf("Mmap(%d, %d).Len() = %d, want %d", tt.off, tt.n, v.Len(), tt.wantLen)
			}
			if err := v.Unmap(); err != nil {
				t.Fatal(err)
			}
			if err := v.Unmap(); err != nil {
				t.Errorf("second Unmap = %v, want nil (munmap of an unmapped range)", err)
			}
		}
	}
}

// TestViewFault: the first access to a page faults it in (device I/O once),
// later accesses go straight to the page, and the entry pins the page.
func TestViewFault(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(50, 4*pg+100)
	e.populate(t, data)
	v := e.mmap(t, pg, 8*pg, false) // file pages 1..8; the file ends in page 4
	reads := e.dev.Reads()
	checkBytes(t, viewRead(t, v, 10, 100), data[pg+10:pg+110], "first access")
	if d := e.dev.Reads() - reads; d != 1 {
		t.Fatalf("fault read %d blocks, want 1", d)
	}
	if e.m.NrPages() != 1 {
		t.Fatalf("fault cached %d pages, want 1", e.m.NrPages())
	}
	p := e.m.index.lookup(1)
	if pt := v.ptes[0].Load(); pt == nil || pt.page != p || pt.writable {
		t.Fatal("no read-only view entry for the faulted page")
	}
	if r := p.refs(); r != 2 {
		t.Fatalf("faulted page ref = %d, want 2 (index + view entry)", r)
	}
	ops := e.dev.Ops()
	checkBytes(t, viewRead(t, v, 0, pg), data[pg:2*pg], "second access")
	if e.dev.Ops() != ops {
		t.Fatal("access to a mapped page did device I/O")
	}
	// Across pages, up to the last byte of the file.
	checkBytes(t, viewRead(t, v, 0, 3*pg+100), data[pg:], "read to EOF")
	// Pages past EOF fault with EFAULT (SIGBUS); so does an access past the view.
	buf := make([]byte, 200)
	// The page holding EOF is mapped whole; its bytes past EOF read as zeros.
	got := viewRead(t, v, 3*pg, 200)
	checkBytes(t, got[:100], data[4*pg:], "last page")
	if !bytes.Equal(got[100:], make([]byte, 100)) {
		t.Fatal("bytes past EOF in the last page are not zeros")
	}
	if n, err := v.ReadAt(buf, 4*pg-10); err != syscall.EFAULT || n != 10 {
		t.Fatalf("view read into the page past EOF = %d, %v; want 10 bytes then EFAULT", n, err)
	}
	if _, err := v.ReadAt(buf, 5*pg); err != syscall.EFAULT {
		t.Fatalf("view read past EOF = %v, want EFAULT", err)
	}
	if _, err := v.ReadAt(buf, 8*pg-100); err != syscall.EFAULT {
		t.Fatalf("view read past the view = %v, want EFAULT", err)
	}
	if _, err := v.ReadAt(buf, -1); err != syscall.EFAULT {
		t.Fatalf("view read at -1 = %v, want EFAULT", err)
	}
	if _, err := v.WriteAt(buf, 0); err != syscall.EFAULT {
		t.Fatalf("WriteAt on a read-only view = %v, want EFAULT", err)
	}
	if p.Dirty() || e.m.NrDirty() != 0 {
		t.Fatal("a refused write dirtied the page")
	}
}

// TestViewWriteAndWriteback: a write through a view allocates the page's
// block and dirties it; writeback writes it and write-protects the entry,
// so the next write dirties the page again.
func TestViewWriteAndWriteback(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.host.Lock()
	e.m.SetSize(4 * pg) // all holes
	e.host.Unlock()
	v := e.mmap(t, 0, 4*pg, true)
	first := []byte("written through a view")
	viewWrite(t, v, first, pg+10)
	if e.m.NrDirty() != 1 {
		t.Fatalf("NrDirty after a view write = %d, want 1", e.m.NrDirty())
	}
	if ext, _ := e.m.Blocks().Lookup(1, 1); ext.Kind == blockmap.Hole {
		t.Fatal("page_mkwrite did not allocate the page's block")
	}
	if pt := v.ptes[1].Load(); pt == nil || !pt.writable {
		t.Fatal("view entry not writable after page_mkwrite")
	}
	writes := e.dev.Writes()
	if err := v.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	if e.m.NrDirty() != 0 || e.dev.Writes()-writes != 1 {
		t.Fatalf("view Sync: NrDirty %d, %d blocks written; want 0, 1", e.m.NrDirty(), e.dev.Writes()-writes)
	}
	if ext, _ := e.m.Blocks().Lookup(1, 1); ext.Kind != blockmap.Mapped {
		t.Fatalf("page 1 after writeback: %v, want mapped", ext.Kind)
	}
	if pt := v.ptes[1].Load(); pt == nil || pt.writable {
		t.Fatal("writeback left the view entry writable")
	}
	second := []byte("again")
	viewWrite(t, v, second, pg+100)
	if e.m.NrDirty() != 1 {
		t.Fatalf("NrDirty after writing a write-protected page = %d, want 1", e.m.NrDirty())
	}
	if err := v.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	// Drop the view's entries so the page can leave the cache, then read
	// the file back from the device.
	if err := v.Madvise(0, v.Len(), unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	e.m.InvalidateClean(0, maxPageIdx+1)
	if e.m.NrPages() != 0 {
		t.Fatalf("NrPages = %d after dropping entries and clean pages", e.m.NrPages())
	}
	want := make([]byte, 4*pg)
	copy(want[pg+10:], first)
	copy(want[pg+100:], second)
	checkBytes(t, e.readAll(t, 0, 4*pg, nil), want, "file after view writes")
	checkBytes(t, viewRead(t, v, 0, 4*pg), want, "view after re-fault")
	if _, err := v.WriteAt([]byte{1}, 4*pg); err != syscall.EFAULT {
		t.Fatalf("view write past the view = %v, want EFAULT", err)
	}
}

// TestViewZap: truncation zaps the view's entries; past EOF the view then
// faults with EFAULT, and a punched middle range reads as zeros.
func TestViewZap(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(51, 8*pg)
	e.populate(t, data)
	v := e.mmap(t, 0, 8*pg, true)
	checkBytes(t, viewRead(t, v, 0, 8*pg), data, "view before")

	e.punch(t, 2, 2)
	for i := range v.ptes {
		if mapped := v.ptes[i].Load() != nil; mapped != (i < 2 || i > 3) {
			t.Fatalf("after punching pages 2-3: view page %d mapped = %v", i, mapped)
		}
	}
	want := bytes.Clone(data)
	clear(want[2*pg : 4*pg])
	checkBytes(t, viewRead(t, v, 0, 8*pg), want, "view after punch")

	e.truncate(t, 5*pg)
	for i := 5; i < 8; i++ {
		if v.ptes[i].Load() != nil {
			t.Fatalf("view page %d still mapped after truncate to 5 pages", i)
		}
	}
	buf := make([]byte, 10)
	if _, err := v.ReadAt(buf, 6*pg); err != syscall.EFAULT {
		t.Fatalf("view read past the new EOF = %v, want EFAULT", err)
	}
	if _, err := v.WriteAt(buf, 5*pg); err != syscall.EFAULT {
		t.Fatalf("view write past the new EOF = %v, want EFAULT", err)
	}
	checkBytes(t, viewRead(t, v, 0, 5*pg), want[:5*pg], "view inside the new EOF")
}

// TestViewPartialTruncateWriteProtects: zeroing the edge page of a
// truncation write-protects its view entries, so a later write through the
// view goes through page_mkwrite again.
func TestViewPartialTruncateWriteProtects(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.populate(t, pattern(52, 2*pg))
	v := e.mmap(t, 0, 2*pg, true)
	viewWrite(t, v, []byte{1}, 0)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	viewWrite(t, v, []byte{2}, 0) // writable again after mkwrite
	if pt := v.ptes[0].Load(); !pt.writable {
		t.Fatal("setup: entry not writable")
	}
	e.truncateRange(t, 100, 200)
	pt := v.ptes[0].Load()
	if pt == nil || pt.writable {
		t.Fatal("edge page of a truncation left writable in the view")
	}
	got := viewRead(t, v, 0, 300)
	if got[0] != 2 || !bytes.Equal(got[100:200], make([]byte, 100)) {
		t.Fatal("view does not show the zeroed edge")
	}
}

func TestViewMadvise(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(53, 8*pg)
	e.populate(t, data)
	v := e.mmap(t, 0, 8*pg, false)
	if err := v.Madvise(0, 4*pg, unix.MADV_WILLNEED); err != nil {
		t.Fatal(err)
	}
	if e.m.NrPages() != 4 {
		t.Fatalf("MADV_WILLNEED of 4 pages cached %d", e.m.NrPages())
	}
	ops := e.dev.Ops()
	viewRead(t, v, 0, 4*pg)
	if e.dev.Ops() != ops {
		t.Fatal("faults after MADV_WILLNEED did device I/O")
	}
	p := e.m.index.lookup(1)
	if err := v.Madvise(pg, 2*pg, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if mapped := v.ptes[i].Load() != nil; mapped != (i == 0 || i == 3) {
			t.Fatalf("after MADV_DONTNEED of pages 1-2: page %d mapped = %v", i, mapped)
		}
	}
	if e.m.NrPages() != 4 || p.refs() != 1 {
		t.Fatalf("MADV_DONTNEED: %d pages cached (want 4), page ref %d (want 1)", e.m.NrPages(), p.refs())
	}
	for _, adv := range []int{unix.MADV_NORMAL, unix.MADV_RANDOM, unix.MADV_SEQUENTIAL} {
		if err := v.Madvise(0, pg, adv); err != nil {
			t.Errorf("Madvise(%d) = %v", adv, err)
		}
	}
	tests := []struct {
		off, n int64
		advice int
		want   error
	}{
		{1, pg, unix.MADV_DONTNEED, syscall.EINVAL},
		{0, -1, unix.MADV_DONTNEED, syscall.EINVAL},
		{0, 9 * pg, unix.MADV_DONTNEED, syscall.ENOMEM},
		{0, pg, 12345, syscall.EINVAL},
	}
	for _, tt := range tests {
		if err := v.Madvise(tt.off, tt.n, tt.advice); err != tt.want {
			t.Errorf("Madvise(%d, %d, %d) = %v, want %v", tt.off, tt.n, tt.advice, err, tt.want)
		}
	}
	if err := v.Sync(0, 9*pg); err != syscall.ENOMEM {
		t.Errorf("view Sync past the view = %v, want ENOMEM", err)
	}
}

func TestViewUnmap(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.populate(t, pattern(54, 2*pg))
	v, err := e.m.Mmap(0, 2*pg, true)
	if err != nil {
		t.Fatal(err)
	}
	viewRead(t, v, 0, 2*pg)
	viewWrite(t, v, []byte{7}, 0)
	if err := v.Unmap(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := v.ReadAt(buf, 0); err != syscall.EFAULT {
		t.Fatalf("ReadAt after Unmap = %v, want EFAULT", err)
	}
	if _, err := v.WriteAt(buf, 0); err != syscall.EFAULT {
		t.Fatalf("WriteAt after Unmap = %v, want EFAULT", err)
	}
	for i := int64(0); i < 2; i++ {
		if r := e.m.index.lookup(i).refs(); r != 1 {
			t.Fatalf("page %d ref after Unmap = %d, want 1", i, r)
		}
	}
	if views := e.m.views.Load(); views != nil && len(*views) != 0 {
		t.Fatalf("%d views left on the mapping after Unmap", len(*views))
	}
	// The data written through the view is still the file's.
	if got := e.readAll(t, 0, 1, nil); got[0] != 7 {
		t.Fatal("data written through the view lost at Unmap")
	}
	if e.m.NrDirty() != 1 {
		t.Fatal("Unmap cleaned a dirty page")
	}
}

// TestViewWritePastEOFNotPersisted: bytes written through a view into the
// last page past EOF never reach storage, and read as zeros once the file
// grows over them.
func TestViewWritePastEOFNotPersisted(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.write(t, pattern(55, 100), 0) // size 100
	v := e.mmap(t, 0, pg, true)
	viewWrite(t, v, []byte("past eof"), 200)
	if err := v.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	dev := e.deviceBytes(t, 0, 1)
	if !bytes.Equal(dev[100:], make([]byte, pg-100)) {
		t.Fatal("bytes past EOF reached the device")
	}
	e.host.Lock()
	e.m.ZeroTail(100)
	e.m.SetSize(pg)
	e.host.Unlock()
	if got := e.readAll(t, 100, pg-100, nil); !bytes.Equal(got, make([]byte, pg-100)) {
		t.Fatal("bytes written past EOF visible after the file grew")
	}
}

// TestViewWriteRacesWriteback writes through a view while another goroutine
// writes the page back: no write may be lost (a write after writeback's
// copy must dirty the page again), so after a final Sync the device holds
// the last value written.
func TestViewWriteRacesWriteback(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.write(t, make([]byte, pg), 0)
	v := e.mmap(t, 0, pg, true)
	const rounds = 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.m.Sync(0, 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var last []byte
	for i := 0; i < rounds; i++ {
		last = []byte(fmt.Sprintf("round %05d", i))
		viewWrite(t, v, last, 0)
	}
	close(stop)
	wg.Wait()
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	if got := e.deviceBytes(t, 0, 1)[:len(last)]; !bytes.Equal(got, last) {
		t.Fatalf("device holds %q after the last view write %q", got, last)
	}
}
