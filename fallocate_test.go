package holefs_test

import (
	"fmt"
	"math"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

const (
	keep     = unix.FALLOC_FL_KEEP_SIZE
	punch    = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	zero     = unix.FALLOC_FL_ZERO_RANGE
	collapse = unix.FALLOC_FL_COLLAPSE_RANGE
	insert   = unix.FALLOC_FL_INSERT_RANGE
	unshare  = unix.FALLOC_FL_UNSHARE_RANGE

	maxFileSize = int64(1) << 42 // vfs.MaxFileSize, Linux's s_maxbytes here
)

// TestFallocateRules checks the argument rules of Linux's vfs_fallocate
// (5.15) and of ext4 (extentfs) and tmpfs (memfs), in Linux's order, and
// that a rejected call changes nothing.
func TestFallocateRules(t *testing.T) {
	const size = 8 * pg
	type rule struct {
		name    string
		mode    uint32
		off, n  int64
		ro      bool   // on a read-only handle
		backend string // "" both
		errno   syscall.Errno
	}
	rules := []rule{
		{name: "negative offset", off: -1, n: pg, errno: syscall.EINVAL},
		{name: "zero length", off: 0, n: 0, errno: syscall.EINVAL},
		{name: "negative length", off: 0, n: -pg, errno: syscall.EINVAL},
		{name: "punch zero length", mode: punch, off: 0, n: 0, errno: syscall.EINVAL},
		{name: "unknown bit", mode: 0x100, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "high bit", mode: 1 << 31, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "unknown bit and negative offset", mode: 0x100, off: -1, n: pg, errno: syscall.EINVAL},
		{name: "punch without keep size", mode: unix.FALLOC_FL_PUNCH_HOLE, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "punch and zero", mode: punch | zero, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "punch and zero no keep", mode: unix.FALLOC_FL_PUNCH_HOLE | zero, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "collapse keep size", mode: collapse | keep, off: 0, n: pg, errno: syscall.EINVAL},
		{name: "collapse and zero", mode: collapse | zero, off: 0, n: pg, errno: syscall.EINVAL},
		{name: "collapse and punch", mode: collapse | punch, off: 0, n: pg, errno: syscall.EINVAL},
		{name: "collapse and punch no keep", mode: collapse | unix.FALLOC_FL_PUNCH_HOLE, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "insert keep size", mode: insert | keep, off: 0, n: pg, errno: syscall.EINVAL},
		{name: "insert and collapse", mode: insert | collapse, off: 0, n: pg, errno: syscall.EINVAL},
		{name: "unshare and zero", mode: unshare | zero, off: 0, n: pg, errno: syscall.EINVAL},
		{name: "unshare", mode: unshare, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "unshare keep size", mode: unshare | keep, off: 0, n: pg, errno: syscall.EOPNOTSUPP},
		{name: "read-only allocate", mode: 0, off: 0, n: pg, ro: true, errno: syscall.EBADF},
		{name: "read-only punch", mode: punch, off: 0, n: pg, ro: true, errno: syscall.EBADF},
		{name: "read-only bad length first", mode: punch, off: 0, n: 0, ro: true, errno: syscall.EINVAL},
		{name: "read-only bad mode first", mode: unix.FALLOC_FL_PUNCH_HOLE, off: 0, n: pg, ro: true, errno: syscall.EOPNOTSUPP},
		{name: "read-only collapse flags first", mode: collapse | keep, off: 0, n: pg, ro: true, errno: syscall.EINVAL},
		{name: "read-only before EFBIG", mode: 0, off: maxFileSize, n: pg, ro: true, errno: syscall.EBADF},
		{name: "past max file size", mode: 0, off: maxFileSize - pg, n: 2 * pg, errno: syscall.EFBIG},
		{name: "keep size past max file size", mode: keep, off: maxFileSize, n: 1, errno: syscall.EFBIG},
		{name: "punch past max file size", mode: punch, off: maxFileSize, n: 1, errno: syscall.EFBIG},
		{name: "offset+length wraps", mode: 0, off: math.MaxInt64 - 10, n: 100, errno: syscall.EFBIG},
		{name: "collapse unaligned offset", mode: collapse, off: 100, n: pg, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "collapse unaligned length", mode: collapse, off: 0, n: pg + 1, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "collapse to EOF", mode: collapse, off: 4 * pg, n: 4 * pg, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "collapse whole file", mode: collapse, off: 0, n: size, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "collapse past EOF", mode: collapse, off: 6 * pg, n: 4 * pg, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "collapse beyond EOF", mode: collapse, off: 9 * pg, n: pg, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "insert at EOF", mode: insert, off: size, n: pg, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "insert past EOF", mode: insert, off: size + pg, n: pg, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "insert unaligned offset", mode: insert, off: 1, n: pg, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "insert unaligned length", mode: insert, off: 0, n: 100, backend: holefs.BackendExtent, errno: syscall.EINVAL},
		{name: "insert past max file size", mode: insert, off: 0, n: maxFileSize - size + pg, backend: holefs.BackendExtent, errno: syscall.EFBIG},
		{name: "memfs zero range", mode: zero, off: 0, n: pg, backend: holefs.BackendMemory, errno: syscall.EOPNOTSUPP},
		{name: "memfs zero range keep size", mode: zero | keep, off: 0, n: pg, backend: holefs.BackendMemory, errno: syscall.EOPNOTSUPP},
		{name: "memfs collapse", mode: collapse, off: 0, n: pg, backend: holefs.BackendMemory, errno: syscall.EOPNOTSUPP},
		{name: "memfs collapse unaligned", mode: collapse, off: 1, n: 1, backend: holefs.BackendMemory, errno: syscall.EOPNOTSUPP},
		{name: "memfs insert", mode: insert, off: 0, n: pg, backend: holefs.BackendMemory, errno: syscall.EOPNOTSUPP},
		{name: "memfs collapse keep size", mode: collapse | keep, off: 0, n: pg, backend: holefs.BackendMemory, errno: syscall.EINVAL},
		{name: "memfs read-only zero", mode: zero, off: 0, n: pg, ro: true, backend: holefs.BackendMemory, errno: syscall.EBADF},
		{name: "memfs zero past max file size", mode: zero, off: maxFileSize, n: pg, backend: holefs.BackendMemory, errno: syscall.EFBIG},
	}
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		f := create(t, fsys, "f")
		data := pattern(9, size)
		writeAt(t, f, data, 0)
		ro := openFile(t, fsys, "f", syscall.O_RDONLY)
		fi, _ := f.Stat()
		blocks := attr(t, fi).Blocks
		for _, r := range rules {
			if r.backend != "" && r.backend != backend {
				continue
			}
			h := f
			if r.ro {
				h = ro
			}
			err := h.Fallocate(r.mode, r.off, r.n)
			if err == nil {
				t.Errorf("%s: Fallocate(%#x, %d, %d) = nil, want %v", r.name, r.mode, r.off, r.n, r.errno)
				continue
			}
			wantErrno(t, err, r.errno, r.name)
			fi, _ := f.Stat()
			if fi.Size() != size || attr(t, fi).Blocks != blocks {
				t.Fatalf("%s: rejected call changed the file: size %d blocks %d", r.name, fi.Size(), attr(t, fi).Blocks)
			}
		}
		checkContent(t, f, data, "after rejected calls")

		// A directory handle is read-only: EBADF, as fallocate(2) on a
		// directory fd; a closed handle is EBADF.
		d, err := fsys.OpenFile("/", syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		wantErrno(t, d.Fallocate(0, 0, pg), syscall.EBADF, "fallocate on a directory")
		wantErrno(t, d.Fallocate(0, 0, 0), syscall.EINVAL, "fallocate on a directory, zero length")
		d.Close()
		g := openFile(t, fsys, "f", syscall.O_RDWR)
		g.Close()
		wantErrno(t, g.Fallocate(0, 0, pg), syscall.EBADF, "fallocate on a closed handle")

		// A range ending exactly at the maximum file size is allowed.
		if err := f.Fallocate(punch, maxFileSize-pg, pg); err != nil {
			t.Errorf("punch of the last page below the maximum size: %v", err)
		}
		// Append-mode handles may fallocate (only the append-only inode
		// flag forbids it).
		a := openFile(t, fsys, "f", syscall.O_WRONLY|syscall.O_APPEND)
		if err := a.Fallocate(punch, 0, 10); err != nil {
			t.Errorf("punch through O_APPEND handle: %v", err)
		}
	})
}

// model is the expected content of a file.
type model []byte

func (m *model) write(p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(*m)) {
		*m = append(*m, make([]byte, end-int64(len(*m)))...)
	}
	copy((*m)[off:], p)
}

func (m *model) resize(n int64) {
	if n <= int64(len(*m)) {
		*m = (*m)[:n]
		return
	}
	*m = append(*m, make([]byte, n-int64(len(*m)))...)
}

func (m *model) zero(off, n int64) {
	end := min(off+n, int64(len(*m)))
	if off < end {
		clear((*m)[off:end])
	}
}

// fallocate applies a successful fallocate to the model.
func (m *model) fallocate(mode uint32, off, n int64) {
	switch {
	case mode&unix.FALLOC_FL_PUNCH_HOLE != 0:
		m.zero(off, n)
	case mode&zero != 0:
		m.zero(off, n)
		if mode&keep == 0 && off+n > int64(len(*m)) {
			m.resize(off + n)
		}
	case mode&collapse != 0:
		*m = append((*m)[:off:off], (*m)[off+n:]...)
	case mode&insert != 0:
		*m = append((*m)[:off:off], append(make([]byte, n), (*m)[off:]...)...)
	default:
		if mode&keep == 0 && off+n > int64(len(*m)) {
			m.resize(off + n)
		}
	}
}

// TestFallocateEffects runs every fallocate mode against a []byte model on
// both backends, checking the content from the cache after each step and,
// in the synced variant, also from the device after Sync+FADV_DONTNEED.
func TestFallocateEffects(t *testing.T) {
	type step struct {
		write  []byte // a write, when not nil
		mode   uint32
		off, n int64
	}
	steps := []step{
		{write: pattern(1, 3*pg), off: 0},
		{mode: 0, off: 5 * pg, n: 2*pg + 10},     // extends the size
		{mode: keep, off: 10 * pg, n: pg},        // allocates past EOF, size kept
		{write: pattern(2, pg+500), off: 3 * pg}, // over the allocated hole
		{mode: punch, off: 100, n: 8192},         // partial pages at both edges
		{mode: punch, off: 7*pg + 5, n: 10 * pg}, // tail of the file, past EOF
		{mode: punch, off: 3*pg + 10, n: 20},     // inside one page
		{mode: zero, off: 6*pg + 7, n: 3 * pg},   // extends the size
		{write: pattern(3, 3*pg+7), off: 6 * pg}, // data to zero and shift
		{mode: zero | keep, off: 8*pg + 1, n: 10 * pg},
		{mode: zero, off: 2 * pg, n: pg},         // one whole page
		{mode: zero, off: 4*pg + 100, n: 2 * pg}, // partial pages at both edges
		{write: pattern(4, 12*pg), off: 0},       // fill everything again
		{mode: collapse, off: pg, n: pg},         // shift down by one page
		{mode: collapse, off: 0, n: 2 * pg},      // at the start
		{mode: insert, off: 2 * pg, n: 3 * pg},   // shift up, leaving zeros
		{mode: insert, off: 0, n: pg},            // at the start
		{mode: collapse, off: 4 * pg, n: 5 * pg}, // across the inserted hole
		{mode: keep, off: 0, n: 20 * pg},         // allocate everything, size kept
		{mode: insert, off: 0, n: pg},            // after the allocation
		{write: pattern(5, 10), off: 20 * pg},    // write far past EOF
		{mode: punch, off: 0, n: 30 * pg},        // the whole file
		{write: pattern(6, 100), off: 7*pg - 50}, // data back after a punch
	}
	for _, backend := range backends {
		for _, synced := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/synced=%v", backend, synced), func(t *testing.T) {
				fsys := newFS(t, holefs.Options{Backend: backend})
				f := create(t, fsys, "f")
				other := create(t, fsys, "other") // keeps a neighbour to catch cross-file damage
				odata := pattern(7, 5*pg)
				writeAt(t, other, odata, 0)
				var m model
				for i, s := range steps {
					what := fmt.Sprintf("step %d (mode %#x off %d n %d)", i, s.mode, s.off, s.n)
					if s.write != nil {
						what = fmt.Sprintf("step %d (write %d at %d)", i, len(s.write), s.off)
						writeAt(t, f, s.write, s.off)
						m.write(s.write, s.off)
					} else {
						err := f.Fallocate(s.mode, s.off, s.n)
						if backend == holefs.BackendMemory && s.mode&(zero|collapse|insert) != 0 {
							wantErrno(t, err, syscall.EOPNOTSUPP, what)
						} else if err != nil {
							t.Fatalf("%s: %v", what, err)
						} else {
							m.fallocate(s.mode, s.off, s.n)
						}
					}
					checkContent(t, f, m, what)
					if synced {
						dropCache(t, f)
						checkContent(t, f, m, what+" after Sync+DONTNEED")
					}
				}
				dropCache(t, f)
				checkContent(t, f, m, "at the end, from storage")
				dropCache(t, other)
				checkContent(t, other, odata, "the other file")
			})
		}
	}
}

// TestPunchPartialPages is the exact case of the brief: punch 100..8292 of
// a three-page file zeroes the tail of page 0, all of page 1 and the head of
// page 2, in the cache and on the device.
func TestPunchPartialPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		for _, cached := range []bool{true, false} {
			fsys := newFS(t, holefs.Options{Backend: backend})
			f := create(t, fsys, "f")
			data := pattern(1, 3*pg)
			writeAt(t, f, data, 0)
			if !cached {
				dropCache(t, f)
			}
			if err := f.Fallocate(punch, 100, 8192); err != nil {
				t.Fatal(err)
			}
			want := model(append([]byte(nil), data...))
			want.zero(100, 8192)
			checkContent(t, f, want, "after punch")
			dropCache(t, f)
			checkContent(t, f, want, "after punch, from storage")
			fi, _ := f.Stat()
			if b := attr(t, fi).Blocks; b != 16 {
				t.Errorf("blocks after punching page 1 = %d, want 16", b)
			}
		}
	})
}

// TestTruncate checks that data past a new, smaller size is gone for good:
// growing the file again reads zeros, including the rest of the page that
// held the old EOF, whether that page is cached, only on the device, or
// was written through a mapped view past EOF.
func TestTruncate(t *testing.T) {
	type variant struct {
		name                     string
		syncBeforeShrink         bool // the data is on the device before the truncate
		dropBetween              bool // the EOF page is not cached when the file grows
		viewWritePastEOF         bool // bytes written through a view past the new EOF
		growByWrite, growByAlloc bool // grow by a write past EOF / fallocate instead of Truncate
	}
	variants := []variant{
		{name: "cached"},
		{name: "synced", syncBeforeShrink: true},
		{name: "dropped between", syncBeforeShrink: true, dropBetween: true},
		{name: "dropped, unsynced", dropBetween: true},
		{name: "view write past EOF", viewWritePastEOF: true},
		{name: "view write past EOF, synced", viewWritePastEOF: true, dropBetween: true},
		{name: "grow by write", growByWrite: true},
		{name: "grow by write, dropped", syncBeforeShrink: true, dropBetween: true, growByWrite: true},
		{name: "grow by fallocate", growByAlloc: true},
		{name: "grow by fallocate, dropped", dropBetween: true, growByAlloc: true},
	}
	for _, backend := range backends {
		for _, v := range variants {
			t.Run(backend+"/"+v.name, func(t *testing.T) {
				fsys := newFS(t, holefs.Options{Backend: backend})
				f := create(t, fsys, "f")
				data := pattern(1, 10<<10)
				writeAt(t, f, data, 0)
				if v.syncBeforeShrink {
					dropCache(t, f)
				}
				if err := f.Truncate(5000); err != nil {
					t.Fatal(err)
				}
				want := model(append([]byte(nil), data[:5000]...))
				checkContent(t, f, want, "after truncate to 5000")
				if n, err := f.ReadAt(make([]byte, 10), 5000); n != 0 || err == nil {
					t.Errorf("read at the new EOF = %d, %v", n, err)
				}
				if v.viewWritePastEOF {
					view, err := f.Mmap(0, 2*pg, true)
					if err != nil {
						t.Fatal(err)
					}
					// Page 1 holds EOF: the part past it is mapped (as with mmap).
					if _, err := view.WriteAt([]byte("past EOF"), 6000); err != nil {
						t.Fatalf("view write in the EOF page: %v", err)
					}
					if _, err := view.WriteAt([]byte("x"), 2*pg-1); err != nil {
						t.Fatalf("view write at the end of the EOF page: %v", err)
					}
					if err := view.Unmap(); err != nil {
						t.Fatal(err)
					}
				}
				if v.dropBetween {
					dropCache(t, f)
				}
				switch {
				case v.growByWrite:
					writeAt(t, f, []byte("end"), 19997)
					want.write([]byte("end"), 19997)
				case v.growByAlloc:
					if err := f.Fallocate(0, 0, 20000); err != nil {
						t.Fatal(err)
					}
					want.resize(20000)
				default:
					if err := f.Truncate(20000); err != nil {
						t.Fatal(err)
					}
					want.resize(20000)
				}
				checkContent(t, f, want, "after growing to 20000")
				dropCache(t, f)
				checkContent(t, f, want, "after growing to 20000, from storage")
				// And down to nothing: every block is freed.
				if err := f.Truncate(0); err != nil {
					t.Fatal(err)
				}
				fi, _ := f.Stat()
				if fi.Size() != 0 || attr(t, fi).Blocks != 0 {
					t.Errorf("after truncate to 0: size %d blocks %d", fi.Size(), attr(t, fi).Blocks)
				}
				if err := f.Truncate(3 * pg); err != nil {
					t.Fatal(err)
				}
				checkContent(t, f, make([]byte, 3*pg), "after truncate 0 then up")
			})
		}
	}
}
