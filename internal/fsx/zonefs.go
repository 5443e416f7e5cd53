package fsx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// The zonefs tester. Two files are modelled: seq/0, a sequential zone
// (direct appends at the write pointer, buffered, direct and mapped reads,
// readahead, reset and finish), and cnv/0, a conventional zone (buffered,
// direct and mapped writes and reads, fixed size). Every operation zonefs
// refuses is tried too and must fail with its errno and change nothing.
// With ImageDir the device is a zoned image, and remounts and crash copies
// check that the files come back from the zone report alone.

// zoneBlocks is the zone size (and capacity) of the zonefs run, in pages.
const zoneBlocks = 32

type zoneTester struct {
	cfg    Config
	r      *rand.Rand
	fs     *holefs.FS
	opts   holefs.Options
	image  string
	seq    *holefs.File // seq/0, O_RDWR|O_DIRECT
	buf    *holefs.File // seq/0, O_RDONLY buffered
	cnv    *holefs.File // cnv/0, O_RDWR
	seqM   []byte       // seq/0's model: its size is the write pointer
	cnvM   []byte       // cnv/0's model: always the capacity long
	view   *holefs.MappedView
	viewOn bool // the view maps seq/0 (else cnv/0)
	op     int
	log    []string
	crash  int
}

// zoneCapacity is both zones' capacity in bytes.
const zoneCapacity = zoneBlocks * pg

// RunZonefs is Run on the zonefs backend (cfg.Backend is ignored).
func RunZonefs(cfg Config) error {
	if cfg.CacheMiB == 0 {
		cfg.CacheMiB = 1
	}
	geo := blockdev.ZonedOptions{ZoneBlocks: zoneBlocks, Zones: 3, Conventional: 1}
	opts := holefs.Options{Backend: holefs.BackendZonefs, LockMode: cfg.Mode, CacheBytes: cfg.CacheMiB << 20,
		ReadaheadBytes: cfg.ReadaheadBytes, Zoned: geo, UnsafeLockNone: true}
	path := ""
	if cfg.ImageDir != "" {
		path = filepath.Join(cfg.ImageDir, "img")
		if err := holefs.Mkfs(path, holefs.MkfsOptions{Zoned: &geo}); err != nil {
			return err
		}
	}
	fsys, err := holefs.Open(path, opts)
	if err != nil {
		return err
	}
	t := &zoneTester{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0x20e)), fs: fsys, opts: opts, image: path,
		cnvM: make([]byte, zoneCapacity)}
	defer func() { t.fs.Close() }()
	if err := t.openFiles(); err != nil {
		return err
	}
	ops := []weightedOp{
		{20, t.appendSeq}, {15, t.readSeq}, {6, t.directReadSeq}, {6, t.mapRead}, {3, t.readahead},
		{5, t.reset}, {2, t.finish}, {6, t.refused},
		{10, t.writeCnv}, {6, t.readCnv}, {3, t.directCnv}, {3, t.mapWriteCnv},
		{3, t.dropCache}, {2, t.reopen},
	}
	if path != "" {
		ops = append(ops, weightedOp{2, t.remount}, weightedOp{1, t.crashCheck})
	}
	if err := runOps(t.r, ops, cfg.Ops, &t.op, 32, func() error { return t.compareAll("periodic check") }); err != nil {
		return err
	}
	t.unmap()
	return t.compareAll("final check")
}

func (t *zoneTester) openFiles() (err error) {
	if t.seq, err = t.fs.OpenFile("seq/0", os.O_RDWR|syscall.O_DIRECT, 0); err != nil {
		return err
	}
	if t.buf, err = t.fs.OpenFile("seq/0", os.O_RDONLY, 0); err != nil {
		return err
	}
	t.cnv, err = t.fs.OpenFile("cnv/0", os.O_RDWR, 0)
	return err
}

func (t *zoneTester) closeFiles() error {
	t.unmap()
	for _, f := range []*holefs.File{t.seq, t.buf, t.cnv} {
		if err := f.Close(); err != nil {
			return t.fail("close: %v", err)
		}
	}
	return nil
}

func (t *zoneTester) logf(format string, args ...any) {
	t.log = append(t.log, fmt.Sprintf("%5d ", t.op)+fmt.Sprintf(format, args...))
}

func (t *zoneTester) fail(format string, args ...any) error {
	return &Failure{Op: t.op, Detail: fmt.Sprintf(format, args...), Log: t.log, Seed: t.cfg.Seed}
}

func (t *zoneTester) random(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(t.r.IntN(255) + 1)
	}
	return b
}

func (t *zoneTester) wantErrno(err error, want syscall.Errno, what string) error {
	if !errors.Is(err, want) {
		return t.fail("%s: got %v, want %v", what, err, want)
	}
	return nil
}

// appendSeq appends 1 to 4 pages at the write pointer; at the capacity
// it must fail with EFBIG.
func (t *zoneTester) appendSeq() error {
	off := int64(len(t.seqM))
	n := int64(1+t.r.IntN(4)) * pg
	data := t.random(int(n))
	t.logf("append %d+%d", off, n)
	k, err := t.seq.WriteAt(data, off)
	if off >= zoneCapacity {
		return t.wantErrno(err, syscall.EFBIG, "append to a full zone")
	}
	want := min(n, zoneCapacity-off)
	if err != nil || int64(k) != want {
		return t.fail("append %d+%d: n=%d err=%v, want n=%d", off, n, k, err, want)
	}
	t.seqM = append(t.seqM, data[:want]...)
	return nil
}

// check reads [off, off+n) of f and compares with model, EOF included.
func (t *zoneTester) check(f *holefs.File, model []byte, off, n int64, what string) error {
	got := make([]byte, n)
	k, err := f.ReadAt(got, off)
	want := model[min(off, int64(len(model))):min(off+n, int64(len(model)))]
	if err != nil && !(err == io.EOF && k == len(want)) {
		return t.fail("%s %d+%d: n=%d err=%v (size %d)", what, off, n, k, err, len(model))
	}
	if k != len(want) || !bytes.Equal(got[:k], want) {
		return t.fail("%s %d+%d: %s", what, off, n, diff(got[:k], want, off))
	}
	return nil
}

func (t *zoneTester) span() (int64, int64) {
	off := t.r.Int64N(zoneCapacity)
	return off, 1 + t.r.Int64N(zoneCapacity-off)
}

func (t *zoneTester) readSeq() error {
	off, n := t.span()
	t.logf("read seq %d+%d", off, n)
	return t.check(t.buf, t.seqM, off, n, "read seq")
}

func (t *zoneTester) directReadSeq() error {
	off, n := t.span()
	off, n = off/pg*pg, (n+pg-1)/pg*pg
	n = min(n, zoneCapacity-off)
	t.logf("direct read seq %d+%d", off, n)
	return t.check(t.seq, t.seqM, off, n, "direct read seq")
}

func (t *zoneTester) readahead() error {
	off, n := t.span()
	t.logf("readahead seq %d+%d", off, n)
	if err := t.buf.Readahead(off, n); err != nil {
		return t.fail("readahead: %v", err)
	}
	return nil
}

// unmap drops the view, if any.
func (t *zoneTester) unmap() {
	if t.view != nil {
		_ = t.view.Unmap()
		t.view = nil
	}
}

// mapRead reads through a read-only view of seq/0 (the whole capacity):
// past the write pointer the view's pages are past EOF (EFAULT).
func (t *zoneTester) mapRead() error {
	if t.view == nil || !t.viewOn || t.r.IntN(8) == 0 {
		t.unmap()
		t.logf("mmap seq read-only")
		v, err := t.buf.Mmap(0, zoneCapacity, false)
		if err != nil {
			return t.fail("mmap seq: %v", err)
		}
		t.view, t.viewOn = v, true
	}
	size := int64(len(t.seqM)) / pg * pg
	if size == 0 {
		return nil
	}
	off := t.r.Int64N(size)
	n := 1 + t.r.Int64N(size-off)
	t.logf("mapped read seq %d+%d", off, n)
	got := make([]byte, n)
	if _, err := t.view.ReadAt(got, off); err != nil {
		return t.fail("mapped read seq %d+%d: %v", off, n, err)
	}
	if want := t.seqM[off : off+n]; !bytes.Equal(got, want) {
		return t.fail("mapped read seq %d+%d: %s", off, n, diff(got, want, off))
	}
	return nil
}

func (t *zoneTester) reset() error {
	t.logf("reset (truncate seq to 0)")
	if err := t.seq.Truncate(0); err != nil {
		return t.fail("reset: %v", err)
	}
	t.seqM = t.seqM[:0]
	return nil
}

func (t *zoneTester) finish() error {
	t.logf("finish (truncate seq to its capacity)")
	if err := t.seq.Truncate(zoneCapacity); err != nil {
		return t.fail("finish: %v", err)
	}
	t.seqM = append(t.seqM, make([]byte, zoneCapacity-len(t.seqM))...)
	return nil
}

// refused tries one operation zonefs refuses, then checks nothing
// changed.
func (t *zoneTester) refused() error {
	size := int64(len(t.seqM))
	var err error
	var want syscall.Errno
	var what string
	switch t.r.IntN(6) {
	case 0:
		what, want = "buffered write to seq", syscall.EIO
		if size >= zoneCapacity {
			// zonefs_file_write_iter checks the capacity first.
			what, want = "buffered write to a full seq", syscall.EFBIG
		}
		h, oerr := t.fs.OpenFile("seq/0", os.O_WRONLY, 0)
		if oerr != nil {
			return t.fail("open seq for a buffered write: %v", oerr)
		}
		_, err = h.WriteAt(t.random(pg), size)
		h.Close()
	case 1:
		if size == 0 || size >= zoneCapacity {
			return nil
		}
		what, want = "direct write behind the write pointer", syscall.EINVAL
		_, err = t.seq.WriteAt(t.random(pg), size-pg)
	case 2:
		if size+pg >= zoneCapacity {
			return nil
		}
		what, want = "direct write past the write pointer", syscall.EINVAL
		_, err = t.seq.WriteAt(t.random(pg), size+pg)
	case 3:
		n := int64(1+t.r.IntN(zoneBlocks-1)) * pg
		if n == size {
			return nil
		}
		what, want = fmt.Sprintf("truncate seq to %d", n), syscall.EPERM
		err = t.seq.Truncate(n)
	case 4:
		what, want = "truncate cnv", syscall.EPERM
		err = t.cnv.Truncate(int64(t.r.IntN(zoneCapacity)))
	case 5:
		what, want = "punch seq", syscall.EOPNOTSUPP
		err = t.seq.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, pg)
	}
	t.logf("refused: %s", what)
	if err := t.wantErrno(err, want, what); err != nil {
		return err
	}
	return t.compareAll("after a refused " + what)
}

func (t *zoneTester) writeCnv() error {
	off, n := t.span()
	n = min(n, 16<<10)
	data := t.random(int(n))
	t.logf("write cnv %d+%d", off, n)
	if k, err := t.cnv.WriteAt(data, off); err != nil || int64(k) != n {
		return t.fail("write cnv %d+%d: n=%d err=%v", off, n, k, err)
	}
	copy(t.cnvM[off:], data)
	return nil
}

func (t *zoneTester) readCnv() error {
	off, n := t.span()
	t.logf("read cnv %d+%d", off, n)
	return t.check(t.cnv, t.cnvM, off, n, "read cnv")
}

// directCnv writes or reads cnv/0 directly, through a second handle.
func (t *zoneTester) directCnv() error {
	off := int64(t.r.IntN(zoneBlocks)) * pg
	n := int64(1+t.r.IntN(int(zoneBlocks-off/pg))) * pg
	h, err := t.fs.OpenFile("cnv/0", os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		return t.fail("open cnv O_DIRECT: %v", err)
	}
	defer h.Close()
	if t.r.IntN(2) == 0 {
		t.logf("direct read cnv %d+%d", off, n)
		return t.check(h, t.cnvM, off, n, "direct read cnv")
	}
	data := t.random(int(n))
	t.logf("direct write cnv %d+%d", off, n)
	if k, err := h.WriteAt(data, off); err != nil || int64(k) != n {
		return t.fail("direct write cnv %d+%d: n=%d err=%v", off, n, k, err)
	}
	copy(t.cnvM[off:], data)
	return nil
}

// mapWriteCnv writes through a writable view of cnv/0.
func (t *zoneTester) mapWriteCnv() error {
	if t.view == nil || t.viewOn || t.r.IntN(8) == 0 {
		t.unmap()
		t.logf("mmap cnv writable")
		v, err := t.cnv.Mmap(0, zoneCapacity, true)
		if err != nil {
			return t.fail("mmap cnv: %v", err)
		}
		t.view, t.viewOn = v, false
	}
	off, n := t.span()
	n = min(n, 8<<10)
	data := t.random(int(n))
	t.logf("mapped write cnv %d+%d", off, n)
	if _, err := t.view.WriteAt(data, off); err != nil {
		return t.fail("mapped write cnv %d+%d: %v", off, n, err)
	}
	copy(t.cnvM[off:], data)
	return nil
}

func (t *zoneTester) dropCache() error {
	t.logf("fsync and drop cache")
	for _, f := range []*holefs.File{t.cnv, t.buf} {
		if err := f.Sync(); err != nil {
			return t.fail("fsync: %v", err)
		}
		if err := f.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
			return t.fail("fadvise DONTNEED: %v", err)
		}
	}
	return nil
}

func (t *zoneTester) reopen() error {
	t.logf("close and reopen")
	if err := t.closeFiles(); err != nil {
		return err
	}
	if err := t.openFiles(); err != nil {
		return t.fail("reopen: %v", err)
	}
	return nil
}

func (t *zoneTester) compareAll(what string) error {
	for _, c := range []struct {
		f     *holefs.File
		model []byte
		name  string
	}{{t.buf, t.seqM, "seq/0"}, {t.cnv, t.cnvM, "cnv/0"}} {
		fi, err := c.f.Stat()
		if err != nil || fi.Size() != int64(len(c.model)) {
			return t.fail("%s: %s: stat size %v (err %v), model %d", what, c.name, sizeOf(fi), err, len(c.model))
		}
		if err := t.check(c.f, c.model, 0, 2*zoneCapacity, what+" "+c.name); err != nil {
			return err
		}
	}
	return nil
}

// remount closes the filesystem and opens the image again: the sizes come
// back from the zone report, the data from the zones.
func (t *zoneTester) remount() error {
	t.logf("remount")
	if err := t.closeFiles(); err != nil {
		return err
	}
	if err := t.fs.Close(); err != nil {
		return t.fail("close the filesystem: %v", err)
	}
	fsys, err := holefs.Open(t.image, t.opts)
	if err != nil {
		return t.fail("open the image again: %v", err)
	}
	t.fs = fsys
	if err := t.openFiles(); err != nil {
		return t.fail("reopen: %v", err)
	}
	return t.compareAll("after remount")
}

// crashCheck fsyncs cnv/0 (seq/0's writes are direct: on the device when
// they return), copies the image's files as they are, and opens the copy:
// both files must be whole, seq/0's size recovered from its write pointer.
func (t *zoneTester) crashCheck() error {
	t.logf("fsync and crash copy")
	if err := t.cnv.Sync(); err != nil {
		return t.fail("fsync: %v", err)
	}
	if err := t.seq.Sync(); err != nil {
		return t.fail("fsync: %v", err)
	}
	t.crash++
	dst := filepath.Join(t.cfg.ImageDir, fmt.Sprintf("crash%d", t.crash))
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dst)
	for _, name := range []string{"data", "data.zones"} {
		b, err := os.ReadFile(filepath.Join(t.image, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			return err
		}
	}
	fsys, err := holefs.Open(dst, t.opts)
	if err != nil {
		return t.fail("open the crash copy: %v", err)
	}
	defer fsys.Close()
	for name, model := range map[string][]byte{"seq/0": t.seqM, "cnv/0": t.cnvM} {
		got, err := fsys.ReadFile(name)
		if err != nil {
			return t.fail("crash copy: read %s: %v", name, err)
		}
		if !bytes.Equal(got, model) {
			return t.fail("crash copy: %s of %d bytes differs from the model's %d: %s", name, len(got), len(model), diff(got, model, 0))
		}
	}
	return nil
}
