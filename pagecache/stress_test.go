package pagecache

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStressSmallCache runs readers, a writer, and writeback and cache
// drops against one file four times the size of a minimal cache. Every
// page is always written whole with one byte value, its version, which
// only grows: a reader must never see a torn page, and never an older
// version of a page than it saw before (a lost write, or a stale page
// brought back from storage). At the end the file must hold the last
// versions, in the cache and on the device.
func TestStressSmallCache(t *testing.T) {
	const nPages = 256
	const writes = 600
	e := newEnv(t, Options{CacheBytes: smallCache}, 2*nPages)
	versions := make([]byte, nPages)
	for i := range versions {
		versions[i] = 1
	}
	e.write(t, bytes.Repeat([]byte{1}, nPages*pg), 0)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			seen := make([]byte, nPages)
			ra := new(ReadaheadState)
			buf := make([]byte, 2*pg)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.Int64N(nPages - 1)
				if n%3 == 0 {
					i = int64(n/3) % (nPages - 1) // a sequential stream, with readahead
				}
				if _, err := e.m.Read(buf, i*pg, ra); err != nil {
					t.Error(err)
					return
				}
				for k := int64(0); k < 2; k++ {
					page := buf[k*pg : (k+1)*pg]
					v := page[0]
					if !bytes.Equal(page, bytes.Repeat([]byte{v}, pg)) {
						t.Errorf("page %d torn", i+k)
						return
					}
					if v < seen[i+k] {
						t.Errorf("page %d went back from version %d to %d", i+k, seen[i+k], v)
						return
					}
					seen[i+k] = v
				}
			}
		}(uint64(r))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(99, 7))
		ra := new(ReadaheadState)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch n % 4 {
			case 0:
				err = e.m.Sync(0, 0)
			case 1:
				first := rng.Int64N(nPages)
				err = e.m.writeback(first, first+16, false, 0)
			case 2:
				err = e.m.Fadvise(ra, rng.Int64N(nPages)*pg, 32*pg, unix.FADV_DONTNEED)
			case 3:
				e.m.InvalidateClean(rng.Int64N(nPages), nPages)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	rng := rand.New(rand.NewPCG(5, 7))
	for n := 0; n < writes; n++ {
		i := rng.IntN(nPages)
		versions[i]++
		e.write(t, bytes.Repeat([]byte{versions[i]}, pg), int64(i)*pg)
		if n%50 == 0 {
			checkLimit(t, e.c, "stress")
		}
	}
	close(stop)
	within(t, "the stress goroutines", wg.Wait)
	want := make([]byte, 0, nPages*pg)
	for _, v := range versions {
		want = append(want, bytes.Repeat([]byte{v}, pg)...)
	}
	checkBytes(t, e.readAll(t, 0, nPages*pg, nil), want, "file after the stress run")
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	e.m.InvalidateClean(0, maxPageIdx+1)
	checkBytes(t, e.readAll(t, 0, nPages*pg, nil), want, "file re-read from the device")
}

// TestViewUnmapRacesFaults faults pages into views while they are
// unmapped: whatever the interleaving, no view entry may survive the Unmap
// holding a page reference (a leaked reference pins the page forever).
func TestViewUnmapRacesFaults(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.populate(t, pattern(91, 8*pg))
	e.readAll(t, 0, 8*pg, nil)
	for round := 0; round < 50; round++ {
		v, err := e.m.Mmap(0, 8*pg, true)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				buf := make([]byte, pg)
				for i := int64(0); i < 8; i++ {
					if g == 0 {
						_, _ = v.WriteAt(buf[:1], ((i+int64(round))%8)*pg) // EFAULT once unmapped
					} else {
						_, _ = v.ReadAt(buf, ((i+int64(g))%8)*pg)
					}
				}
			}(g)
		}
		if err := v.Unmap(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for i := range v.ptes {
			if v.ptes[i].Load() != nil {
				t.Fatalf("round %d: view page %d mapped after Unmap", round, i)
			}
		}
		for i := int64(0); i < 8; i++ {
			if p := e.m.index.lookup(i); p != nil && p.refs() != 1 {
				t.Fatalf("round %d: page %d ref %d after Unmap, want 1", round, i, p.refs())
			}
		}
	}
}

// TestCacheSharedByMappings: two files share one cache's limit; eviction
// takes pages of both and neither file's data suffers.
func TestCacheSharedByMappings(t *testing.T) {
	const nPages = 256
	a := newEnv(t, Options{CacheBytes: smallCache}, 2*nPages)
	// A second mapping on the same cache, with its own store and device.
	b := newEnv(t, Options{}, 2*nPages)
	b.m = a.c.NewMapping(MappingOptions{Blocks: b.store.NewFile(0), Device: b.dev, Host: b.host, Key: 2})
	da, db := pattern(92, nPages*pg), pattern(93, nPages*pg)
	a.populate(t, da)
	b.populate(t, db)
	raA, raB := new(ReadaheadState), new(ReadaheadState)
	for i := int64(0); i < nPages; i++ {
		checkBytes(t, a.readAll(t, i*pg, pg, raA), da[i*pg:(i+1)*pg], "file a")
		checkBytes(t, b.readAll(t, i*pg, pg, raB), db[i*pg:(i+1)*pg], "file b")
		checkLimit(t, a.c, "two files")
	}
	// Async readahead may still be adding pages; the counts converge.
	eventually(t, "the cache's page count to equal its mappings'", func() bool {
		return a.m.NrPages()+b.m.NrPages() == a.c.Stats().Pages
	})
	if a.m.NrPages() == 0 || b.m.NrPages() == 0 {
		t.Fatalf("one file lost all its pages to the other: %d and %d", a.m.NrPages(), b.m.NrPages())
	}
}
