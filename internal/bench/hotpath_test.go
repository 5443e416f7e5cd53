package bench

// Hot-path benchmarks of the engine through the library API, for the
// paths pagecache/bench_test.go and the root bench_test.go do not cover:
// (those have the serial and parallel cache-hit read of a few pages, the
// sequential fill and writeback batching):
//
//	go test -run '^$' -bench . ./internal/bench/
//
// Lock checking is off in benchmark runs (lockcheck.EnableForTests).

import (
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

func benchFS(b *testing.B, opts holefs.Options) *holefs.FS {
	b.Helper()
	fsys, err := holefs.Open("", opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fsys.Close() })
	return fsys
}

func benchFile(b *testing.B, fsys *holefs.FS, name string, size int64) *holefs.File {
	b.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if err := fillFile(f, size, 1); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkHitRandomHandles is the hit workload as a benchmark: 4 KiB
// random reads of a cached 16 MiB file (larger than the L2 cache: page
// structs and index nodes miss), each goroutine with its own handle.
// Compare -cpu 1,2 for scaling.
func BenchmarkHitRandomHandles(b *testing.B) {
	const size = 16 << 20
	for _, mode := range holefs.LockModes {
		b.Run(mode.String(), func(b *testing.B) {
			fsys := benchFS(b, holefs.Options{LockMode: mode, CacheBytes: 2*size + 4<<20})
			benchFile(b, fsys, "f", size)
			var seed atomic.Uint64
			b.SetBytes(pageSize)
			b.RunParallel(func(pb *testing.PB) {
				h, err := fsys.OpenFile("f", os.O_RDONLY, 0)
				if err != nil {
					b.Error(err)
					return
				}
				defer h.Close()
				r := rand.New(rand.NewPCG(seed.Add(1), 2))
				buf := make([]byte, pageSize)
				for pb.Next() {
					if _, err := h.ReadAt(buf, r.Int64N(size/pageSize)*pageSize); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkWriteHit overwrites a whole cached page with a buffered write
// (inode lock, block allocation check, page lock, copy, dirty accounting),
// with writeback running as the dirty thresholds ask.
func BenchmarkWriteHit(b *testing.B) {
	const size = 4 << 20
	fsys := benchFS(b, holefs.Options{CacheBytes: 4 * size})
	f := benchFile(b, fsys, "f", size)
	buf := fillPattern(3, pageSize)
	r := rand.New(rand.NewPCG(1, 3))
	b.SetBytes(pageSize)
	for b.Loop() {
		if _, err := f.WriteAt(buf, r.Int64N(size/pageSize)*pageSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadMissEvict is a random 4 KiB read miss with eviction at
// steady state: fill (invalidate lock shared, page allocation, block
// lookup, device read from memory, no latency) plus reclaim by the clock.
func BenchmarkReadMissEvict(b *testing.B) {
	const size = 64 << 20
	for _, mode := range holefs.LockModes {
		b.Run(mode.String(), func(b *testing.B) {
			fsys := benchFS(b, holefs.Options{LockMode: mode, CacheBytes: size / 8})
			f := benchFile(b, fsys, "f", size)
			if err := f.Fadvise(0, 0, unix.FADV_RANDOM); err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 4))
			buf := make([]byte, pageSize)
			b.SetBytes(pageSize)
			for b.Loop() {
				if _, err := f.ReadAt(buf, r.Int64N(size/pageSize)*pageSize); err != nil {
					b.Fatal(err)
				}
			}
			s := fsys.CacheStats()
			b.ReportMetric(100*float64(s.Hits)/float64(max(s.Hits+s.Misses, 1)), "hit%")
		})
	}
}

// BenchmarkPunchCached punches 64 clean cached pages (one index leaf) and
// reads them back in: the truncation walk and page teardown per page.
func BenchmarkPunchCached(b *testing.B) {
	const pages = 64
	fsys := benchFS(b, holefs.Options{CacheBytes: 64 << 20})
	f := benchFile(b, fsys, "f", pages*pageSize)
	buf := make([]byte, pages*pageSize)
	for b.Loop() {
		b.StopTimer()
		if _, err := f.WriteAt(buf, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := f.Fallocate(punchMode, 0, pages*pageSize); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/pages, "ns/page")
}

// BenchmarkPunchSparse1TiB punches 1 TiB of a sparse file with nothing
// cached: the cost must not depend on the range.
func BenchmarkPunchSparse1TiB(b *testing.B) {
	fsys := benchFS(b, holefs.Options{})
	f, err := fsys.Create("sparse")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 40); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := f.Fallocate(punchMode, 0, 1<<40); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSim measures the trace simulators.
func BenchmarkSim(b *testing.B) {
	const pages = 1 << 16
	r := rand.New(rand.NewPCG(1, 5))
	trace := make([]int32, 1<<20)
	for i := range trace {
		trace[i] = int32(r.IntN(pages))
	}
	b.Run("lru", func(b *testing.B) {
		for b.Loop() {
			simLRU(trace, pages, pages/10)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(trace)), "ns/access")
	})
	b.Run("clock", func(b *testing.B) {
		for b.Loop() {
			simCLOCK(trace, pages, pages/10, 32)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(trace)), "ns/access")
	})
}
