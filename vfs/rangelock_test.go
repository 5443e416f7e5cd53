package vfs

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/pagecache"
)

// TestRemovalStallsOnlyItsRange pauses each remover at its most dangerous
// point (page cache truncated, blocks not yet changed, the invalidate lock
// held) and sends cache-missing readers at pages inside and outside the
// range it holds. With the range lock a reader outside completes while the
// remover is paused and a reader inside waits until it is done; with the
// per-file lock (FileInvalidateLock, Linux's) every reader waits; with
// LockNone even the reader inside gets through: the race window. Collapse,
// insert and truncate hold everything from their offset on.
func TestRemovalStallsOnlyItsRange(t *testing.T) {
	const size = 16 * pg
	ops := []struct {
		name  string
		op    func(h *File) error
		apply func(m []byte) []byte
		// inside and outside are pages the remover holds and does not,
		// and that a read misses in the cache: the partial pages at a
		// range's edges are read and zeroed by the remover, and a read
		// past a truncate's new EOF returns before any fill.
		inside, outside []int64
	}{
		{"punch", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4*pg+100, 2*pg)
		}, func(m []byte) []byte { clear(m[4*pg+100 : 6*pg+100]); return m }, []int64{5}, []int64{1, 3, 7, 12}},
		{"zero", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 4*pg, 2*pg)
		}, func(m []byte) []byte { clear(m[4*pg : 6*pg]); return m }, []int64{5}, []int64{1, 6, 12}},
		{"collapse", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, 4*pg, 2*pg)
		}, func(m []byte) []byte { return append(m[:4*pg:4*pg], m[6*pg:]...) }, []int64{4, 12}, []int64{1, 3}},
		{"insert", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_INSERT_RANGE, 4*pg, pg)
		}, func(m []byte) []byte { return append(m[:4*pg:4*pg], append(make([]byte, pg), m[4*pg:]...)...) }, []int64{4, 12}, []int64{1, 3}},
		{"truncate", func(h *File) error { return h.Truncate(10*pg + 5) },
			func(m []byte) []byte { return m[:10*pg+5] }, nil, []int64{1, 9}},
	}
	for _, lockMode := range []string{"range", "file", "none"} {
		for _, o := range ops {
			t.Run(lockMode+"/"+o.name, func(t *testing.T) {
				paused, resume := make(chan struct{}), make(chan struct{})
				var victim uint64
				hooks := &Hooks{AfterTruncatePages: func(ino uint64, op string) {
					if ino == victim {
						close(paused)
						<-resume
					}
				}}
				copts := pagecache.Options{FileInvalidateLock: lockMode == "file"}
				if lockMode == "none" {
					copts.LockMode = pagecache.LockNone
				}
				f := newExtentFS(t, 256, copts, hooks)
				h := f.open(t, "victim")
				old := pattern(7, size)
				mustWrite(t, h, old, 0)
				drop(t, h)
				victim = h.in.ino
				inv := h.in.mapping.InvalidateLock()

				opErr := make(chan error, 1)
				go func() { opErr <- o.op(h) }()
				waitFor(t, o.name+" to pause", func() bool {
					select {
					case <-paused:
						return true
					default:
						return false
					}
				})
				type reader struct {
					page int64
					done chan struct{}
					got  []byte
				}
				var blocked []*reader
				read := func(page int64, wantBlocked, outside bool) {
					r := &reader{page: page, done: make(chan struct{}), got: make([]byte, pg)}
					rh := f.open(t, "victim")
					base := inv.Waiters()
					go func() {
						defer close(r.done)
						n, err := rh.ReadAt(r.got, page*pg)
						if err != nil && err != io.EOF {
							t.Errorf("read of page %d: %v", page, err)
						}
						r.got = r.got[:n]
					}()
					waitFor(t, fmt.Sprintf("the read of page %d to finish or wait", page), func() bool {
						select {
						case <-r.done:
							return true
						default:
							return inv.Waiters() > base
						}
					})
					select {
					case <-r.done:
						if wantBlocked {
							t.Errorf("the read of page %d completed while %s held its range", page, o.name)
						} else if outside && !bytes.Equal(r.got, old[page*pg:(page+1)*pg]) {
							t.Errorf("the read of page %d, outside the range, returned other bytes", page)
						}
					default:
						if !wantBlocked {
							t.Errorf("the read of page %d waits for %s", page, o.name)
						}
						blocked = append(blocked, r)
					}
				}
				for _, p := range o.inside {
					read(p, lockMode != "none", false)
				}
				for _, p := range o.outside {
					read(p, lockMode == "file", true)
				}
				close(resume)
				if err := <-opErr; err != nil {
					t.Fatalf("%s: %v", o.name, err)
				}
				if lockMode == "none" {
					return // the reads inside got through: what the cache holds now is the race's
				}
				want := o.apply(append([]byte(nil), old...))
				for _, r := range blocked {
					waitFor(t, "a waiting read", func() bool {
						select {
						case <-r.done:
							return true
						default:
							return false
						}
					})
					end := min((r.page+1)*pg, int64(len(want)))
					if wantPage := want[min(r.page*pg, end):end]; !bytes.Equal(r.got, wantPage) {
						t.Errorf("the read of page %d, which waited, returned bytes other than the file's after %s", r.page, o.name)
					}
				}
				checkData(t, h, want, "after "+o.name)
			})
		}
	}
}

// waitFor polls cond until it holds. The deadline only turns a hang into
// a failure; nothing is asserted about time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}
