package vfs

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/pagecache"
)

// hookLog records every AfterTruncatePages call with the lock state the
// protocol requires at that point: inode and invalidate locks held
// exclusive.
type hookLog struct {
	mu    sync.Mutex
	calls []string
	fs    *FS
	watch map[uint64]*Inode // inodes to check (evicted ones leave f.inodes)
}

func (l *hookLog) hook(ino uint64, op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	in := l.watch[ino]
	if in == nil {
		l.calls = append(l.calls, fmt.Sprintf("%s(unknown inode %d)", op, ino))
		return
	}
	var inv []string
	for _, r := range in.mapping.InvalidateLock().ExclusiveRanges() {
		end := fmt.Sprint(r[1])
		if r[1] > 1<<40 {
			end = "end"
		}
		inv = append(inv, fmt.Sprintf("[%d,%s)", r[0], end))
	}
	l.calls = append(l.calls, fmt.Sprintf("%s inode=%v invalidate=%s", op,
		in.lock.HeldExclusive(), strings.Join(inv, ",")))
}

func (l *hookLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls
	l.calls = nil
	return c
}

// TestRemoversHoldLocks checks that every block-removing operation reaches
// the window between truncating the page cache and changing the block map
// with the inode lock and the invalidate lock held exclusive, once, and
// names itself; and that operations that remove nothing never get there.
func TestRemoversHoldLocks(t *testing.T) {
	log := &hookLog{watch: map[uint64]*Inode{}}
	hooks := &Hooks{AfterTruncatePages: log.hook}
	for _, backend := range []string{"extentfs", "memfs"} {
		t.Run(backend, func(t *testing.T) {
			var f testFS
			if backend == "extentfs" {
				f = newExtentFS(t, 1024, pagecache.Options{}, hooks)
			} else {
				f = newMemFS(t, 1024, hooks)
			}
			log.fs = f.FS
			newFile := func(name string) *File {
				h := f.open(t, name)
				log.watch[h.in.ino] = h.in
				mustWrite(t, h, pattern(1, 8*pg), 0)
				return h
			}
			h := newFile("f")
			// The invalidate lock is held over the pages removed, the
			// partial edge pages zeroed included, and from the offset on
			// for what shifts or drops everything past it.
			ok := func(pages string) string { return "inode=true invalidate=" + pages }
			steps := []struct {
				name string
				op   func() error
				want []string
				mem  bool // also on memfs
			}{
				{"punch", func() error { return h.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, pg, pg) }, []string{"punch " + ok("[1,2)")}, true},
				{"punch inside a page", func() error { return h.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 10, 10) }, []string{"punch " + ok("[0,1)")}, true},
				{"zero", func() error { return h.Fallocate(unix.FALLOC_FL_ZERO_RANGE, pg, 2*pg) }, []string{"zero " + ok("[1,3)")}, false},
				{"collapse", func() error { return h.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, pg, pg) }, []string{"collapse " + ok("[1,end)")}, false},
				{"insert", func() error { return h.Fallocate(unix.FALLOC_FL_INSERT_RANGE, pg, pg) }, []string{"insert " + ok("[1,end)")}, false},
				{"truncate down", func() error { return h.Truncate(3*pg + 5) }, []string{"truncate " + ok("[3,end)")}, true},
				{"truncate up", func() error { return h.Truncate(10 * pg) }, nil, true},
				{"allocate", func() error { return h.Fallocate(0, 0, 20*pg) }, nil, true},
				{"write", func() error { _, _, err := h.WriteAt([]byte("x"), 5); return err }, nil, true},
				{"rejected collapse", func() error {
					if err := h.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, 0, 100*pg); err != syscall.EINVAL {
						return fmt.Errorf("err %v", err)
					}
					return nil
				}, nil, false},
				{"unlink of a closed file", func() error {
					g := newFile("g")
					g.Close()
					return f.Unlink("g")
				}, []string{"evict " + ok("[0,end)")}, true},
				{"last close of an unlinked file", func() error {
					g := newFile("g")
					if err := f.Unlink("g"); err != nil {
						return err
					}
					if c := log.take(); len(c) != 0 {
						return fmt.Errorf("unlink of an open file evicted it: %v", c)
					}
					return g.Close()
				}, []string{"evict " + ok("[0,end)")}, true},
				{"rename over a closed file", func() error {
					newFile("g").Close()
					newFile("k").Close()
					return f.Rename("k", "g", 0)
				}, []string{"evict " + ok("[0,end)")}, true},
				{"unmap of the last view of an unlinked file", func() error {
					g := newFile("g")
					v, err := g.Mmap(0, pg, false)
					if err != nil {
						return err
					}
					g.Close()
					f.Unlink("g")
					if c := log.take(); len(c) != 0 {
						return fmt.Errorf("unlink with a view evicted: %v", c)
					}
					return v.Unmap()
				}, []string{"evict " + ok("[0,end)")}, true},
			}
			for _, s := range steps {
				if backend == "memfs" && !s.mem {
					continue
				}
				log.take()
				if err := s.op(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if got := log.take(); fmt.Sprint(got) != fmt.Sprint(s.want) {
					t.Errorf("%s: hook calls %q, want %q", s.name, got, s.want)
				}
			}
			// The holds are released afterwards.
			if h.in.lock.Held() || h.in.mapping.InvalidateLock().Held() {
				t.Errorf("locks still held after the operations")
			}
		})
	}
}

// TestNoStaleReadDuringRemoval races a reader (cache miss) against each
// block-removing operation at its most dangerous point, after the page
// cache of the range is truncated and before the blocks are freed, and then
// lets another file take the freed blocks and write a secret into them
// between the reader's block lookup and its device read. The protocol must
// make the reader wait for the removal and look the blocks up afresh: it
// returns the file's new content (zeros for a punched range), never its old
// data and never the other file's secret.
func TestNoStaleReadDuringRemoval(t *testing.T) {
	const (
		off  = 2 * pg
		n    = 3 * pg
		size = 8 * pg
	)
	ops := []struct {
		name  string
		op    func(h *File) error
		apply func(m []byte) []byte
	}{
		{"punch", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		}, func(m []byte) []byte { clear(m[off : off+n]); return m }},
		{"zero", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_ZERO_RANGE, off, n)
		}, func(m []byte) []byte { clear(m[off : off+n]); return m }},
		{"collapse", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, off, 2*pg)
		}, func(m []byte) []byte { return append(m[:off:off], m[off+2*pg:]...) }},
		{"insert", func(h *File) error {
			return h.Fallocate(unix.FALLOC_FL_INSERT_RANGE, off, pg)
		}, func(m []byte) []byte { return append(m[:off:off], append(make([]byte, pg), m[off:]...)...) }},
		{"truncate", func(h *File) error { return h.Truncate(off) },
			func(m []byte) []byte { return m[:off] }},
	}
	for _, mode := range []pagecache.LockMode{pagecache.LockInvalidate, pagecache.LockRWSem} {
		for _, o := range ops {
			t.Run(fmt.Sprintf("%v/%s", mode, o.name), func(t *testing.T) {
				var (
					armed    atomic.Bool
					target   atomic.Pointer[Inode]
					mapped   = make(chan blockmap.Extent, 1)
					resume   = make(chan struct{})
					readDone = make(chan struct{})
					got      []byte
					gotErr   error
					reader   *File
				)
				startReader := func() {
					go func() {
						defer close(readDone)
						buf := make([]byte, n)
						k, err := reader.ReadAt(buf, off)
						got, gotErr = buf[:k], err
					}()
				}
				copts := pagecache.Options{LockMode: mode, Hooks: &pagecache.Hooks{
					AfterMapRead: func(m *pagecache.Mapping, e blockmap.Extent) {
						in := target.Load()
						if in == nil || m != in.mapping || !armed.CompareAndSwap(true, false) {
							return
						}
						mapped <- e
						<-resume
					},
				}}
				hooks := &Hooks{AfterTruncatePages: func(ino uint64, op string) {
					in := target.Load()
					if in == nil || ino != in.ino {
						return
					}
					armed.Store(true)
					startReader()
					// Wait until the reader blocks on the lock this removal
					// holds (or has finished, for a read past the new EOF, or
					// - the bug this test is for - has looked up the blocks
					// being removed).
					for in.lock.Waiters()+in.mapping.InvalidateLock().Waiters() == 0 && len(mapped) == 0 {
						select {
						case <-readDone:
							return
						default:
							runtime.Gosched()
						}
					}
				}}
				f := newExtentFS(t, 64, copts, hooks)
				var resumeOnce sync.Once
				release := func() { resumeOnce.Do(func() { close(resume) }) }
				t.Cleanup(release) // before the FS closes: nothing stays paused
				h := f.open(t, "victim")
				old := pattern(1, size)
				mustWrite(t, h, old, 0)
				drop(t, h)
				reader = f.open(t, "victim")
				target.Store(h.in)

				if err := o.op(h); err != nil {
					t.Fatalf("%s: %v", o.name, err)
				}
				target.Store(nil)
				want := o.apply(append([]byte(nil), old...))
				// Let another file take every free block and fill it with
				// a secret while the reader is between lookup and read.
				secret := bytes.Repeat([]byte{0xEE}, pg)
				var e blockmap.Extent
				select {
				case e = <-mapped:
					s := f.open(t, "secret")
					_, _, free := f.Statfs()
					for i := range free {
						mustWrite(t, s, secret, i*pg)
					}
					if err := s.Sync(); err != nil {
						t.Fatal(err)
					}
					release()
				case <-readDone:
					armed.Store(false)
				}
				<-readDone
				if gotErr != nil && gotErr != io.EOF {
					t.Fatalf("reader: %v", gotErr)
				}
				if bytes.Contains(got, secret[:16]) {
					t.Fatalf("reader returned another file's data (extent %+v)", e)
				}
				if end := off + int64(len(got)); end > int64(len(want)) || !bytes.Equal(got, want[off:end]) {
					t.Fatalf("reader returned %d bytes not matching the file after %s (extent %+v)", len(got), o.name, e)
				}
				checkData(t, h, want, "after "+o.name)
				drop(t, h)
				checkData(t, h, want, "after "+o.name+", from the device")
			})
		}
	}
}
