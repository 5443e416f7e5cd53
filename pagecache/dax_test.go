package pagecache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
)

// newDAXEnv is newEnv with the file in DAX mode on the memory device.
func newDAXEnv(t testing.TB, opts Options, nblocks int64) *env {
	t.Helper()
	e := newEnv(t, opts, nblocks)
	e.m = e.c.NewMapping(MappingOptions{Blocks: e.store.NewFile(0), Device: e.mem, DAX: e.mem, Host: e.host, Key: 1})
	return e
}

// newDAXFile adds another DAX file of the same store to e's cache.
func (e *env) newDAXFile(key uintptr) (*Mapping, *lockcheck.RWMutex) {
	host := &lockcheck.RWMutex{}
	host.Init(lockcheck.RankInode, key)
	return e.c.NewMapping(MappingOptions{Blocks: e.store.NewFile(0), Device: e.mem, DAX: e.mem, Host: host, Key: key}), host
}

// TestDAXNoPages checks that every access path of a DAX file goes to the
// device's memory and none leaves a page in the cache.
func TestDAXNoPages(t *testing.T) {
	e := newDAXEnv(t, Options{}, 64)
	data := pattern(3, 4*pg+100)
	e.write(t, data, 0)
	v := e.mmap(t, 0, 5*pg, true)
	var ra ReadaheadState
	steps := []struct {
		name string
		run  func() error
	}{
		{"read", func() error { _, err := e.m.Read(make([]byte, 3*pg), 10, &ra); return err }},
		{"view read", func() error { _, err := v.ReadAt(make([]byte, 2*pg), pg); return err }},
		{"view write", func() error { _, err := v.WriteAt([]byte("xyz"), 2*pg+5); return err }},
		{"readahead", func() error { return e.m.Readahead(0, 0) }},
		{"fadvise willneed", func() error { return e.m.Fadvise(&ra, 0, 0, unix.FADV_WILLNEED) }},
		{"fadvise dontneed", func() error { return e.m.Fadvise(&ra, 0, 0, unix.FADV_DONTNEED) }},
		{"madvise willneed", func() error { return v.Madvise(0, 4*pg, unix.MADV_WILLNEED) }},
		{"msync", func() error { return v.Sync(0, 0) }},
		{"fsync", func() error { return e.m.Sync(0, 0) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n, d := e.m.NrPages(), e.m.NrDirty(); n != 0 || d != 0 {
			t.Fatalf("after %s: %d pages, %d dirty in the cache of a DAX file", s.name, n, d)
		}
	}
	if st := e.c.Stats(); st.FillPages != 0 || st.WritebackPages != 0 {
		t.Fatalf("DAX file filled %d and wrote back %d pages", st.FillPages, st.WritebackPages)
	}
}

// TestDAXCoherence checks that read, write and view accesses of a DAX file
// see each other at once, with no sync in between, and that the bytes are
// the device's.
func TestDAXCoherence(t *testing.T) {
	e := newDAXEnv(t, Options{}, 64)
	e.write(t, pattern(5, 3*pg), 0)
	v := e.mmap(t, 0, 3*pg, true)
	want := pattern(5, 3*pg)
	check := func(what string) {
		t.Helper()
		checkBytes(t, e.readAll(t, 0, 3*pg, nil), want, what+": read")
		checkBytes(t, viewRead(t, v, 0, 3*pg), want, what+": view")
		x, err := e.m.Blocks().Lookup(0, 3)
		if err != nil || x.Count != 3 {
			t.Fatalf("%s: Lookup = %+v, %v; want 3 contiguous blocks", what, x, err)
		}
		dev := make([]byte, 3*pg)
		if err := e.mem.ReadBlocks(dev, x.Block); err != nil {
			t.Fatal(err)
		}
		checkBytes(t, dev, want, what+": device")
	}
	check("after write")
	viewWrite(t, v, []byte("through the view"), pg+10)
	copy(want[pg+10:], "through the view")
	check("after view write")
	e.write(t, []byte("through write"), 2*pg-5)
	copy(want[2*pg-5:], "through write")
	check("after write over a page boundary")
}

// TestDAXTruncateZapsViews checks that truncation unmaps views past the new
// EOF (EFAULT there), zeroes the tail of the new last page in the device's
// memory, and that growing the file back reads zeros.
func TestDAXTruncateZapsViews(t *testing.T) {
	e := newDAXEnv(t, Options{}, 64)
	e.write(t, pattern(7, 4*pg), 0)
	v := e.mmap(t, 0, 4*pg, true)
	viewRead(t, v, 0, 4*pg)
	e.truncate(t, pg+100)
	for i := range v.ptes {
		if mapped := v.ptes[i].Load() != nil; mapped != (i < 2) {
			t.Fatalf("after truncate to 1 page + 100: view page %d mapped = %v", i, mapped)
		}
	}
	buf := make([]byte, 10)
	if _, err := v.ReadAt(buf, 2*pg); err != syscall.EFAULT {
		t.Fatalf("view read past the new EOF = %v, want EFAULT", err)
	}
	if _, err := v.WriteAt(buf, 3*pg); err != syscall.EFAULT {
		t.Fatalf("view write past the new EOF = %v, want EFAULT", err)
	}
	e.host.Lock()
	e.m.ZeroTail(e.m.Size())
	e.m.SetSize(4 * pg)
	e.host.Unlock()
	want := pattern(7, 4*pg)
	clear(want[pg+100:])
	checkBytes(t, e.readAll(t, 0, 4*pg, nil), want, "read after growing back")
	checkBytes(t, viewRead(t, v, 0, 4*pg), want, "view after growing back")
}

// TestDAXNewBlocksZeroed checks that a block given to a page by a write
// fault or a write is zeroed before anyone can read it: the allocator
// hands out the block another file just freed, secret and all.
func TestDAXNewBlocksZeroed(t *testing.T) {
	for _, how := range []string{"write fault", "write"} {
		t.Run(how, func(t *testing.T) {
			e := newDAXEnv(t, Options{}, 16)
			other, ohost := e.newDAXFile(2)
			secret := bytes.Repeat([]byte{'S'}, 4*pg)
			ohost.Lock()
			if _, err := other.Write(secret, 0); err != nil {
				t.Fatal(err)
			}
			inv := other.LockRemove(0, math.MaxInt64)
			other.SetSize(0)
			if err := other.TruncateRange(0, math.MaxInt64); err != nil {
				t.Fatal(err)
			}
			if err := other.Blocks().Truncate(0); err != nil {
				t.Fatal(err)
			}
			inv.Unlock()
			ohost.Unlock()

			e.host.Lock()
			e.m.SetSize(4 * pg)
			e.host.Unlock()
			switch how {
			case "write fault":
				v := e.mmap(t, 0, 4*pg, true)
				viewWrite(t, v, []byte("x"), pg)
			case "write":
				e.host.Lock()
				if _, err := e.m.Write([]byte("x"), pg); err != nil {
					t.Fatal(err)
				}
				e.host.Unlock()
			}
			if e.m.Blocks().Blocks() != 1 {
				t.Fatalf("file owns %d blocks, want the one written", e.m.Blocks().Blocks())
			}
			want := make([]byte, 4*pg)
			want[pg] = 'x'
			checkBytes(t, e.readAll(t, 0, 4*pg, nil), want, "read")
		})
	}
}

// TestDAXHoleEntries checks that a read fault on a hole maps zeros without
// allocating, and that when the page gets a block (by a write, or a write
// fault through another view) every view's hole entry goes, so the views
// see the new data.
func TestDAXHoleEntries(t *testing.T) {
	for _, how := range []string{"write", "write fault"} {
		t.Run(how, func(t *testing.T) {
			e := newDAXEnv(t, Options{}, 16)
			e.host.Lock()
			e.m.SetSize(2 * pg)
			e.host.Unlock()
			ro := e.mmap(t, 0, 2*pg, false)
			rw := e.mmap(t, 0, 2*pg, true)
			checkBytes(t, viewRead(t, ro, 0, 2*pg), make([]byte, 2*pg), "hole through the read-only view")
			checkBytes(t, viewRead(t, rw, 0, 2*pg), make([]byte, 2*pg), "hole through the writable view")
			if n := e.m.Blocks().Blocks(); n != 0 {
				t.Fatalf("read faults allocated %d blocks", n)
			}
			data := []byte("new data")
			switch how {
			case "write":
				e.host.Lock()
				if _, err := e.m.Write(data, pg); err != nil {
					t.Fatal(err)
				}
				e.host.Unlock()
			case "write fault":
				viewWrite(t, rw, data, pg)
			}
			checkBytes(t, viewRead(t, ro, pg, len(data)), data, "read-only view")
			checkBytes(t, viewRead(t, rw, pg, len(data)), data, "writable view")
		})
	}
}

// TestDAXFsyncFlushes checks that fsync and msync of a DAX file are the
// device's flush, with their errors.
func TestDAXFsyncFlushes(t *testing.T) {
	e := newDAXEnv(t, Options{}, 16)
	e.write(t, pattern(1, pg), 0)
	v := e.mmap(t, 0, pg, true)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	_ = e.mem.Close() // a closed device's flush fails (EBADF)
	if err := e.m.Sync(0, 0); err == nil {
		t.Fatal("fsync of a DAX file on a closed device succeeded: it did not flush")
	}
	if err := v.Sync(0, 0); err == nil {
		t.Fatal("msync of a DAX file on a closed device succeeded: it did not flush")
	}
}

// TestDAXRace runs views, reads and writes of a DAX file against a
// truncator and a neighbour file that takes every freed block and fills it
// with a secret, under -race in the correct lock modes: no access may see
// the secret, and no read may see a byte the file never held. (The
// forced interleaving in internal/repro shows LockNone exposing it.)
func TestDAXRace(t *testing.T) {
	for _, mode := range []LockMode{LockInvalidate, LockRWSem} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newDAXEnv(t, Options{LockMode: mode}, 64)
			other, ohost := e.newDAXFile(2)
			const pages = 8
			fill := bytes.Repeat([]byte{'a'}, pages*pg)
			e.write(t, fill, 0)
			var stop atomic.Bool
			var wg sync.WaitGroup
			var bad atomic.Value
			report := func(format string, a ...any) {
				bad.CompareAndSwap(nil, fmt.Sprintf(format, a...))
				stop.Store(true)
			}
			checkBuf := func(what string, b []byte) {
				for i, c := range b {
					if c != 'a' && c != 'b' && c != 0 {
						report("%s: byte %d is %q", what, i, c)
						return
					}
				}
			}
			const rounds = 200
			wg.Add(4)
			go func() { // the truncator: down to one page and back
				defer wg.Done()
				defer stop.Store(true)
				for r := 0; r < rounds && !stop.Load(); r++ {
					e.truncate(t, pg)
					e.host.Lock()
					e.m.SetSize(pages * pg)
					if _, err := e.m.Write(bytes.Repeat([]byte{'a'}, pg), 3*pg); err != nil {
						report("write: %v", err)
					}
					e.host.Unlock()
				}
			}()
			go func() { // the neighbour: takes freed blocks, writes the secret, frees them
				defer wg.Done()
				secret := bytes.Repeat([]byte{'S'}, 4*pg)
				for !stop.Load() {
					ohost.Lock()
					_, err := other.Write(secret, 0)
					inv := other.LockRemove(0, math.MaxInt64)
					other.SetSize(0)
					if err == nil {
						err = other.TruncateRange(0, math.MaxInt64)
					}
					if err == nil {
						err = other.Blocks().Truncate(0)
					}
					inv.Unlock()
					ohost.Unlock()
					if err != nil {
						report("neighbour: %v", err)
					}
				}
			}()
			go func() { // view reader and writer
				defer wg.Done()
				v, err := e.m.Mmap(0, pages*pg, true)
				if err != nil {
					report("mmap: %v", err)
					return
				}
				defer v.Unmap()
				buf := make([]byte, pg)
				for !stop.Load() {
					for i := int64(0); i < pages; i++ {
						if _, err := v.ReadAt(buf, i*pg); err == nil {
							checkBuf("view read", buf)
						} else if err != syscall.EFAULT {
							report("view read: %v", err)
						}
						if _, err := v.WriteAt([]byte("b"), i*pg+7); err != nil && err != syscall.EFAULT {
							report("view write: %v", err)
						}
					}
				}
			}()
			go func() { // reader
				defer wg.Done()
				buf := make([]byte, pages*pg)
				for !stop.Load() {
					n, err := e.m.Read(buf, 0, nil)
					if err != nil && err != io.EOF {
						report("read: %v", err)
					}
					checkBuf("read", buf[:n])
				}
			}()
			wg.Wait()
			if msg := bad.Load(); msg != nil {
				t.Fatal(msg)
			}
		})
	}
}

// TestDAXWriteFaultENOSPC checks that a write fault on a full device fails
// with ENOSPC, writes nothing, and leaves the page a hole reading zeros.
func TestDAXWriteFaultENOSPC(t *testing.T) {
	e := newDAXEnv(t, Options{}, 2)
	e.write(t, pattern(9, 2*pg), 0) // every block of the store
	e.host.Lock()
	e.m.SetSize(3 * pg)
	e.host.Unlock()
	v := e.mmap(t, 0, 3*pg, true)
	if n, err := v.WriteAt([]byte("x"), 2*pg); n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write fault on a full device = %d, %v; want 0, ENOSPC", n, err)
	}
	checkBytes(t, viewRead(t, v, 2*pg, pg), make([]byte, pg), "the page after the failed write fault")
	if x, err := e.m.Blocks().Lookup(2, 1); err != nil || x.Kind != blockmap.Hole {
		t.Fatalf("page 2 after ENOSPC: %+v, %v; want a hole", x, err)
	}
}
