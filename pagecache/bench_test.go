package pagecache

import (
	"fmt"
	"testing"
)

// Benchmarks run without the lock-order checker (see TestMain).
//
//	go test -run '^$' -bench . ./pagecache/

// BenchmarkReadHit measures the lockless cache-hit read of 4 KiB, serial
// and from all Ps, in each lock mode: LockRWSem takes the inode lock shared
// even on a hit, the other two take nothing.
func BenchmarkReadHit(b *testing.B) {
	const nPages = 256
	for _, mode := range LockModes {
		e := newEnv(b, Options{LockMode: mode}, 2*nPages)
		e.write(b, pattern(80, nPages*pg), 0)
		e.readAll(b, 0, nPages*pg, nil)
		b.Run(mode.String()+"/serial", func(b *testing.B) {
			buf := make([]byte, pg)
			b.SetBytes(pg)
			i := int64(0)
			for b.Loop() {
				if _, err := e.m.Read(buf, (i%nPages)*pg, nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(mode.String()+"/parallel", func(b *testing.B) {
			b.SetBytes(pg)
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, pg)
				ra := new(ReadaheadState)
				i := int64(0)
				for pb.Next() {
					if _, err := e.m.Read(buf, (i%nPages)*pg, ra); err != nil {
						b.Error(err)
						return
					}
					i += 7
				}
			})
		})
	}
}

// BenchmarkFill measures the miss path: drop the file's clean pages, then
// read it back sequentially through readahead (fill, block lookup, device
// read), per lock mode.
func BenchmarkFill(b *testing.B) {
	const nPages = 64
	for _, mode := range LockModes {
		b.Run(mode.String(), func(b *testing.B) {
			e := newEnv(b, Options{LockMode: mode}, 2*nPages)
			e.populate(b, pattern(81, nPages*pg))
			buf := make([]byte, nPages*pg)
			b.SetBytes(nPages * pg)
			for b.Loop() {
				e.m.InvalidateClean(0, maxPageIdx+1)
				if n, err := e.m.Read(buf, 0, new(ReadaheadState)); err != nil || n != len(buf) {
					b.Fatalf("Read = %d, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkWritebackBatch measures dirtying and writing back a file, with
// contiguous dirty pages (one device write per cluster) and with every
// other page dirty (one device write per page).
func BenchmarkWritebackBatch(b *testing.B) {
	const nPages = 256
	for _, stride := range []int64{1, 2} {
		b.Run(fmt.Sprintf("stride=%d", stride), func(b *testing.B) {
			e := newEnv(b, Options{}, 2*nPages)
			e.write(b, pattern(82, nPages*pg), 0)
			page := pattern(83, pg)
			b.SetBytes(nPages / stride * pg)
			for b.Loop() {
				e.host.Lock()
				for i := int64(0); i < nPages; i += stride {
					if _, err := e.m.Write(page, i*pg); err != nil {
						b.Fatal(err)
					}
				}
				e.host.Unlock()
				if err := e.m.Sync(0, 0); err != nil {
					b.Fatal(err)
				}
			}
			s := e.c.Stats()
			b.ReportMetric(float64(s.WritebackPages)/float64(max(s.WritebackIOs, 1)), "pages/IO")
		})
	}
}
