// Package fsx is a shadow-model random tester in the style of fsx: one
// goroutine applies random operations to a file through the holefs library
// and to a plain byte slice, and compares the two after each operation. It
// covers every data path of a file: buffered and direct I/O, mapped views,
// every fallocate mode, truncate, SEEK_DATA/SEEK_HOLE, copy_file_range,
// close and reopen, fsync and cache drops. On a mismatch it returns the log
// of operations that led there, replayable from the seed.
package fsx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

const pg = 4096

var errEOF = io.EOF

// Config is one run.
type Config struct {
	Backend  string
	Mode     holefs.LockMode
	Seed     uint64
	Ops      int
	MaxSize  int64 // largest file offset used; default 256 KiB
	CacheMiB int64 // page cache size; default 1 MiB, small so pages are evicted and re-read
	// ReadaheadBytes is the largest readahead window (default 128 KiB).
	// One page disables async readahead, the one fill path that runs on
	// its own goroutine: under LockNone it races this tester's removers,
	// as it would any program's.
	ReadaheadBytes int64
	// ImageDir, if set, is an empty directory: the run uses a durable
	// image made there (extentfs or ext2) and adds two operations, a remount
	// (close the filesystem, open the image again) and a crash check
	// (fsync, copy the image's files as they are on disk, open the copy
	// and compare).
	ImageDir string
	// DataChecksums makes the image with data checksums (every write then
	// goes out of place, and every read is checked).
	DataChecksums bool
	// BackingDir is the passthrough backend's directory (empty, required
	// with that backend). The run adds two operations: a backing check
	// (fsync, then read the backing file directly and compare, size
	// included) and an outside change (write or truncate the backing file
	// directly, reopen, and expect the change). Fallocate modes the
	// backing filesystem refuses must fail with EOPNOTSUPP and change
	// nothing.
	BackingDir string
}

// Failure is a mismatch between the file and the model.
type Failure struct {
	Op     int
	Detail string
	Log    []string // the operations before the mismatch, oldest first
	Seed   uint64
}

func (f *Failure) Error() string {
	tail := f.Log
	if len(tail) > 30 {
		tail = tail[len(tail)-30:]
	}
	return fmt.Sprintf("fsx: op %d (seed %d): %s\nlast operations:\n  %s", f.Op, f.Seed, f.Detail, strings.Join(tail, "\n  "))
}

const pageSize = 4096

type tester struct {
	cfg     Config
	r       *rand.Rand
	fs      *holefs.FS
	f       *holefs.File
	other   *holefs.File // copy source
	model   []byte       // the file's bytes; len(model) is its size
	src     []byte       // the copy source's bytes
	view    *holefs.MappedView
	viewOff int64 // file offset of the view
	log     []string
	op      int
	memfs   bool
	// refused are the fallocate modes the backend must refuse with
	// EOPNOTSUPP (memfs, or what the backing filesystem lacks).
	refused uint32
	// noFallocate: the backend has no fallocate at all (ext2), every mode
	// is refused with EOPNOTSUPP.
	noFallocate bool
	opts        holefs.Options
	image       string // the image's path; "" in memory
	crashes     int    // crash copies made, for their names
	cloneOK     bool   // the backend shares blocks (Clone does not fail with EOPNOTSUPP)
}

// Run applies cfg.Ops random operations and returns the first mismatch as
// a *Failure, or another error if the run could not proceed.
func Run(cfg Config) error {
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 256 << 10
	}
	if cfg.CacheMiB == 0 {
		cfg.CacheMiB = 1
	}
	opts := holefs.Options{Backend: cfg.Backend, LockMode: cfg.Mode,
		CacheBytes: cfg.CacheMiB << 20, SizeBytes: 64 << 20, ReadaheadBytes: cfg.ReadaheadBytes}
	path := ""
	if cfg.ImageDir != "" {
		path = filepath.Join(cfg.ImageDir, "img")
		if err := holefs.Mkfs(path, holefs.MkfsOptions{SizeBytes: opts.SizeBytes, DataChecksums: cfg.DataChecksums, Backend: cfg.Backend}); err != nil {
			return err
		}
		opts.SizeBytes, opts.UnsafeLockNone = 0, true
	}
	refused := uint32(0)
	switch cfg.Backend {
	case holefs.BackendMemory:
		refused = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_COLLAPSE_RANGE | unix.FALLOC_FL_INSERT_RANGE
	case holefs.BackendPassthrough:
		if cfg.BackingDir == "" {
			return errors.New("fsx: the passthrough backend needs Config.BackingDir")
		}
		opts.BackingDir, opts.UnsafeLockNone = cfg.BackingDir, true
		var err error
		if refused, err = refusedModes(cfg.BackingDir); err != nil {
			return err
		}
	}
	fsys, err := holefs.Open(path, opts)
	if err != nil {
		return err
	}
	t := &tester{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0x5f5)), fs: fsys, memfs: cfg.Backend == holefs.BackendMemory,
		opts: opts, image: path, refused: refused, noFallocate: cfg.Backend == holefs.BackendExt2}
	defer func() { t.fs.Close() }()
	if t.f, err = fsys.Create("fsx"); err != nil {
		return err
	}
	if t.other, err = fsys.Create("src"); err != nil {
		return err
	}
	t.src = t.random(int(cfg.MaxSize / 2))
	if _, err := t.other.WriteAt(t.src, 0); err != nil {
		return err
	}
	// An unaligned clone fails with EINVAL where clones work and with
	// EOPNOTSUPP where they cannot, before anything is touched.
	t.cloneOK = !errors.Is(t.other.Clone(t.f, 1, 0, 0), syscall.EOPNOTSUPP)
	ops := []weightedOp{
		{20, t.write}, {20, t.read}, {6, t.mapRead}, {6, t.mapWrite}, {6, t.truncate},
		{6, t.punch}, {5, t.zero}, {4, t.collapse}, {4, t.insert}, {4, t.allocate},
		{4, t.seek}, {4, t.copyRange}, {3, t.direct}, {3, t.reopen}, {3, t.sync},
		{3, t.dropCache}, {2, t.remap}, {3, t.clone}, {2, t.dedupe},
	}
	if cfg.Backend == holefs.BackendPassthrough {
		ops = append(ops, weightedOp{2, t.backingCheck}, weightedOp{2, t.outsideChange})
	}
	if path != "" {
		ops = append(ops, weightedOp{2, t.remount}, weightedOp{1, t.crashCheck})
	}
	if err := runOps(t.r, ops, cfg.Ops, &t.op, 64, func() error { return t.compareAll("periodic check") }); err != nil {
		return err
	}
	if t.view != nil {
		_ = t.view.Unmap()
	}
	return t.compareAll("final check")
}

func (t *tester) logf(format string, args ...any) {
	t.log = append(t.log, fmt.Sprintf("%5d ", t.op)+fmt.Sprintf(format, args...))
}

func (t *tester) fail(format string, args ...any) error {
	return &Failure{Op: t.op, Detail: fmt.Sprintf(format, args...), Log: t.log, Seed: t.cfg.Seed}
}

func (t *tester) random(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(t.r.IntN(255) + 1) // never 0: written data must not look like a hole
	}
	return b
}

// span returns a random offset and length inside [0, MaxSize).
func (t *tester) span(maxLen int64) (int64, int64) {
	off := t.r.Int64N(t.cfg.MaxSize)
	n := 1 + t.r.Int64N(min(maxLen, t.cfg.MaxSize-off))
	return off, n
}

// aligned rounds a span to pages, as collapse and insert need.
func aligned(off, n int64) (int64, int64) {
	off = off / pg * pg
	n = max((n+pg-1)/pg*pg, pg)
	return off, n
}

func (t *tester) size() int64 { return int64(len(t.model)) }

func (t *tester) setSize(n int64) {
	if n <= t.size() {
		t.model = t.model[:n]
		return
	}
	t.model = append(t.model, make([]byte, n-t.size())...)
}

func (t *tester) write() error {
	off, n := t.span(64 << 10)
	data := t.random(int(n))
	t.logf("write %d+%d", off, n)
	if got, err := t.f.WriteAt(data, off); err != nil || int64(got) != n {
		return t.fail("write %d+%d: n=%d err=%v", off, n, got, err)
	}
	if off+n > t.size() {
		t.setSize(off + n)
	}
	copy(t.model[off:], data)
	return nil
}

func (t *tester) read() error {
	off, n := t.span(64 << 10)
	t.logf("read %d+%d", off, n)
	return t.check(off, n, "read")
}

// check reads [off, off+n) through the buffered path and compares.
func (t *tester) check(off, n int64, what string) error {
	got := make([]byte, n)
	k, err := t.f.ReadAt(got, off)
	want := t.model[min(off, t.size()):min(off+n, t.size())]
	if err != nil && !(errors.Is(err, errEOF) && int64(k) == int64(len(want))) {
		return t.fail("%s %d+%d: n=%d err=%v (size %d)", what, off, n, k, err, t.size())
	}
	if int64(k) != int64(len(want)) || !bytes.Equal(got[:k], want) {
		return t.fail("%s %d+%d: %s", what, off, n, diff(got[:k], want, off))
	}
	return nil
}

func (t *tester) compareAll(what string) error {
	if fi, err := t.f.Stat(); err != nil || fi.Size() != t.size() {
		return t.fail("%s: stat size %v (err %v), model %d", what, sizeOf(fi), err, t.size())
	}
	return t.check(0, t.cfg.MaxSize*2, what)
}

func (t *tester) truncate() error {
	n := t.r.Int64N(t.cfg.MaxSize)
	t.logf("truncate %d", n)
	t.unmapIfPast(n)
	if err := t.f.Truncate(n); err != nil {
		return t.fail("truncate %d: %v", n, err)
	}
	t.setSize(n)
	return nil
}

func (t *tester) punch() error {
	off, n := t.span(48 << 10)
	t.logf("punch %d+%d", off, n)
	err := t.f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if t.refuses(unix.FALLOC_FL_PUNCH_HOLE) {
		return t.wantRefused(err, "punch")
	}
	if err != nil {
		return t.fail("punch %d+%d: %v", off, n, err)
	}
	if off < t.size() {
		clear(t.model[off:min(off+n, t.size())])
	}
	return nil
}

func (t *tester) zero() error {
	off, n := t.span(48 << 10)
	keep := t.r.IntN(2) == 0
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE)
	if keep {
		mode |= unix.FALLOC_FL_KEEP_SIZE
	}
	t.logf("zero %d+%d keep=%v", off, n, keep)
	err := t.f.Fallocate(mode, off, n)
	if t.refuses(unix.FALLOC_FL_ZERO_RANGE) {
		return t.wantRefused(err, "zero")
	}
	if err != nil {
		return t.fail("zero %d+%d: %v", off, n, err)
	}
	if !keep && off+n > t.size() {
		t.setSize(off + n)
	}
	if off < t.size() {
		clear(t.model[off:min(off+n, t.size())])
	}
	return nil
}

func (t *tester) collapse() error {
	off, n := aligned(t.span(32 << 10))
	t.logf("collapse %d+%d (size %d)", off, n, t.size())
	err := t.f.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, off, n)
	switch {
	case t.refuses(unix.FALLOC_FL_COLLAPSE_RANGE):
		return t.wantRefused(err, "collapse")
	case off+n >= t.size():
		return t.wantErrno(err, syscall.EINVAL, "collapse reaching EOF")
	case err != nil:
		return t.fail("collapse %d+%d: %v", off, n, err)
	}
	t.unmapIfPast(t.size() - n)
	t.model = append(t.model[:off], t.model[off+n:]...)
	return nil
}

func (t *tester) insert() error {
	off, n := aligned(t.span(32 << 10))
	t.logf("insert %d+%d (size %d)", off, n, t.size())
	err := t.f.Fallocate(unix.FALLOC_FL_INSERT_RANGE, off, n)
	switch {
	case t.refuses(unix.FALLOC_FL_INSERT_RANGE):
		return t.wantRefused(err, "insert")
	case off >= t.size():
		return t.wantErrno(err, syscall.EINVAL, "insert at or past EOF")
	case err != nil:
		return t.fail("insert %d+%d: %v", off, n, err)
	}
	t.model = append(t.model[:off], append(make([]byte, n), t.model[off:]...)...)
	return nil
}

func (t *tester) allocate() error {
	off, n := t.span(64 << 10)
	keep := t.r.IntN(2) == 0
	mode := uint32(0)
	if keep {
		mode = unix.FALLOC_FL_KEEP_SIZE
	}
	t.logf("allocate %d+%d keep=%v", off, n, keep)
	err := t.f.Fallocate(mode, off, n)
	if t.noFallocate {
		return t.wantRefused(err, "allocate")
	}
	if err != nil {
		return t.fail("allocate %d+%d: %v", off, n, err)
	}
	if !keep && off+n > t.size() {
		t.setSize(off + n)
	}
	return nil
}

// seek checks SEEK_DATA and SEEK_HOLE for soundness: everything skipped by
// SEEK_DATA reads as zeros, a hole starts at zeros, and EOF is a hole.
func (t *tester) seek() error {
	off := t.r.Int64N(t.cfg.MaxSize)
	t.logf("seek %d (size %d)", off, t.size())
	for _, whence := range []int{holefs.SeekData, holefs.SeekHole} {
		pos, err := t.f.Seek(off, whence)
		if off >= t.size() {
			if err := t.wantErrno(err, syscall.ENXIO, "seek past EOF"); err != nil {
				return err
			}
			continue
		}
		if whence == holefs.SeekData && errors.Is(err, syscall.ENXIO) {
			pos = t.size()
		} else if err != nil {
			return t.fail("seek(%d, %d): %v", off, whence, err)
		}
		if pos < off || pos > t.size() {
			return t.fail("seek(%d, %d) = %d outside [%d, %d]", off, whence, pos, off, t.size())
		}
		if whence == holefs.SeekData && bytes.ContainsFunc(t.model[off:pos], func(r rune) bool { return r != 0 }) {
			return t.fail("SEEK_DATA(%d) = %d skips data", off, pos)
		}
		if whence == holefs.SeekHole && pos < t.size() && t.model[pos] != 0 {
			return t.fail("SEEK_HOLE(%d) = %d, but that byte is data", off, pos)
		}
	}
	return nil
}

// clone shares a page-aligned range of the source file into the file, or
// a range of the file into another part of it (FICLONERANGE); sometimes
// the range runs to the source's EOF with a partial last page.
func (t *tester) clone() error {
	fromSelf := t.r.IntN(3) == 0 && t.size() >= 2*pageSize
	src, srcData := t.other, t.src
	if fromSelf {
		src, srcData = t.f, t.model
	}
	if len(srcData) == 0 {
		return nil
	}
	srcPages := (int64(len(srcData)) + pageSize - 1) / pageSize
	srcOff := t.r.Int64N(srcPages) * pageSize
	n := int64(1+t.r.IntN(8)) * pageSize
	if t.r.IntN(4) == 0 {
		n = 0 // to EOF
	}
	count := int64(len(srcData)) - srcOff
	if n > 0 {
		count = min(n, count)
	}
	dstOff := t.r.Int64N(t.cfg.MaxSize/pageSize) * pageSize
	if count%pageSize != 0 && dstOff+count < t.size() {
		dstOff = (t.size() + pageSize - 1) / pageSize * pageSize // a partial EOF page lands at EOF
	}
	t.logf("clone %s %d -> %d+%d", map[bool]string{true: "self", false: "src"}[fromSelf], srcOff, dstOff, n)
	err := src.Clone(t.f, srcOff, dstOff, n)
	span := (count + pageSize - 1) / pageSize * pageSize
	switch {
	case !t.cloneOK:
		return t.wantErrno(err, syscall.EOPNOTSUPP, "clone where the backend cannot share blocks")
	case fromSelf && srcOff < dstOff+span && dstOff < srcOff+span:
		return t.wantErrno(err, syscall.EINVAL, "clone of overlapping ranges")
	case err != nil:
		return t.fail("clone: %v", err)
	}
	data := append([]byte(nil), srcData[srcOff:srcOff+count]...)
	if dstOff+count > t.size() {
		t.setSize(dstOff + count)
	}
	copy(t.model[dstOff:], data)
	return nil
}

// dedupe shares a range of the source with the file where they are equal
// (after making them equal half the time).
func (t *tester) dedupe() error {
	if !t.cloneOK {
		return nil
	}
	pages := min(int64(len(t.src)), t.size()) / pageSize
	if pages == 0 {
		return nil
	}
	off := t.r.Int64N(pages) * pageSize
	n := int64(1+t.r.IntN(int(min(4, pages-off/pageSize)))) * pageSize
	if t.r.IntN(2) == 0 {
		if _, err := t.f.WriteAt(t.src[off:off+n], off); err != nil {
			return t.fail("write: %v", err)
		}
		copy(t.model[off:], t.src[off:off+n])
	}
	equal := bytes.Equal(t.model[off:off+n], t.src[off:off+n])
	t.logf("dedupe %d+%d (equal %v)", off, n, equal)
	err := t.other.Dedupe(t.f, off, off, n)
	switch {
	case equal && err != nil:
		return t.fail("dedupe of equal ranges: %v", err)
	case !equal && !errors.Is(err, holefs.ErrDedupeDiffers):
		return t.fail("dedupe of different ranges: %v, want ErrDedupeDiffers", err)
	}
	return nil
}

func (t *tester) copyRange() error {
	srcOff := t.r.Int64N(int64(len(t.src)))
	dstOff, n := t.span(32 << 10)
	t.logf("copy_range src %d -> %d+%d", srcOff, dstOff, n)
	got, err := t.other.CopyRange(t.f, srcOff, dstOff, n)
	want := min(n, int64(len(t.src))-srcOff)
	if err != nil || got != want {
		return t.fail("copy_range: n=%d err=%v, want n=%d", got, err, want)
	}
	if dstOff+got > t.size() {
		t.setSize(dstOff + got)
	}
	copy(t.model[dstOff:], t.src[srcOff:srcOff+got])
	return nil
}

// direct reads or writes whole pages with O_DIRECT (not on memfs).
func (t *tester) direct() error {
	if t.memfs {
		return nil
	}
	off, n := aligned(t.span(32 << 10))
	d, err := t.fs.OpenFile("fsx", os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		return t.fail("open O_DIRECT: %v", err)
	}
	defer d.Close()
	if t.r.IntN(2) == 0 {
		t.logf("direct write %d+%d", off, n)
		data := t.random(int(n))
		if k, err := d.WriteAt(data, off); err != nil || int64(k) != n {
			return t.fail("direct write %d+%d: n=%d err=%v", off, n, k, err)
		}
		if off+n > t.size() {
			t.setSize(off + n)
		}
		copy(t.model[off:], data)
		return nil
	}
	t.logf("direct read %d+%d", off, n)
	got := make([]byte, n)
	k, err := d.ReadAt(got, off)
	want := t.model[min(off, t.size()):min(off+n, t.size())]
	if (err != nil && !errors.Is(err, errEOF)) || !bytes.Equal(got[:k], want) {
		return t.fail("direct read %d+%d: n=%d err=%v %s", off, n, k, err, diff(got[:k], want, off))
	}
	return nil
}

func (t *tester) reopen() error {
	t.logf("close and reopen")
	if err := t.f.Close(); err != nil {
		return t.fail("close: %v", err)
	}
	var err error
	if t.f, err = t.fs.OpenFile("fsx", os.O_RDWR, 0); err != nil {
		return t.fail("reopen: %v", err)
	}
	return nil
}

// remount closes the filesystem and opens the image again: everything the
// model holds must have been committed by Close.
func (t *tester) remount() error {
	t.logf("remount")
	if t.view != nil {
		if err := t.view.Unmap(); err != nil {
			return t.fail("unmap: %v", err)
		}
		t.view = nil
	}
	if err := t.f.Close(); err != nil {
		return t.fail("close: %v", err)
	}
	if err := t.other.Close(); err != nil {
		return t.fail("close: %v", err)
	}
	if err := t.fs.Close(); err != nil {
		return t.fail("close the filesystem: %v", err)
	}
	fsys, err := holefs.Open(t.image, t.opts)
	if err != nil {
		return t.fail("open the image again: %v", err)
	}
	t.fs = fsys
	if t.f, err = fsys.OpenFile("fsx", os.O_RDWR, 0); err != nil {
		return t.fail("reopen: %v", err)
	}
	if t.other, err = fsys.OpenFile("src", os.O_RDWR, 0); err != nil {
		return t.fail("reopen: %v", err)
	}
	return t.compareAll("after remount")
}

// crashCheck fsyncs, then opens a copy of the image's files as they are on
// disk: what a crash now would leave. The fsynced file must be whole.
func (t *tester) crashCheck() error {
	t.logf("fsync and crash copy")
	if err := t.f.Sync(); err != nil {
		return t.fail("fsync: %v", err)
	}
	t.crashes++
	dst := filepath.Join(t.cfg.ImageDir, fmt.Sprintf("crash%d", t.crashes))
	if err := copyImage(t.image, dst); err != nil {
		return err
	}
	defer os.RemoveAll(dst)
	fsys, err := holefs.Open(dst, t.opts)
	if err != nil {
		return t.fail("open the crash copy: %v", err)
	}
	defer fsys.Close()
	got, err := fsys.ReadFile("fsx")
	if err != nil {
		return t.fail("crash copy: read: %v", err)
	}
	if !bytes.Equal(got, t.model) {
		return t.fail("crash copy: fsynced file of %d bytes differs from the model's %d: %s", len(got), len(t.model), diff(got, t.model, 0))
	}
	return nil
}

func copyImage(src, dst string) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"data", "meta.db"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (t *tester) sync() error {
	t.logf("fsync")
	if err := t.f.Sync(); err != nil {
		return t.fail("fsync: %v", err)
	}
	return nil
}

// dropCache writes back and drops the clean pages, so the next reads come
// from the device (on memfs the pages are the storage and stay).
func (t *tester) dropCache() error {
	t.logf("drop cache")
	if err := t.f.Sync(); err != nil {
		return t.fail("fsync: %v", err)
	}
	if err := t.f.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
		return t.fail("fadvise DONTNEED: %v", err)
	}
	return nil
}

// remap replaces the mapped view with one over a random page-aligned range.
func (t *tester) remap() error {
	if t.view != nil {
		if err := t.view.Unmap(); err != nil {
			return t.fail("unmap: %v", err)
		}
		t.view = nil
	}
	off, n := aligned(t.span(64 << 10))
	t.logf("mmap %d+%d", off, n)
	v, err := t.f.Mmap(off, n, true)
	if err != nil {
		return t.fail("mmap %d+%d: %v", off, n, err)
	}
	t.view = v
	t.viewOff = off
	return nil
}

// unmapIfPast drops the view when the file is about to shrink below its
// start: a real program would get SIGBUS there, which is not a mismatch.
func (t *tester) unmapIfPast(newSize int64) {
	if t.view != nil && newSize < t.viewOff+t.view.Len() {
		_ = t.view.Unmap()
		t.view = nil
		t.logf("munmap (file shrinks under the view)")
	}
}

// viewSpan returns a random range of the view that lies inside the file.
func (t *tester) viewSpan() (int64, int64, bool) {
	if t.view == nil {
		return 0, 0, false
	}
	end := min(t.viewOff+t.view.Len(), t.size())
	if end <= t.viewOff {
		return 0, 0, false
	}
	off := t.viewOff + t.r.Int64N(end-t.viewOff)
	return off, 1 + t.r.Int64N(end-off), true
}

func (t *tester) mapRead() error {
	off, n, ok := t.viewSpan()
	if !ok {
		return t.remap()
	}
	t.logf("mapped read %d+%d", off, n)
	got := make([]byte, n)
	if _, err := t.view.ReadAt(got, off-t.viewOff); err != nil {
		return t.fail("mapped read %d+%d: %v", off, n, err)
	}
	if want := t.model[off : off+n]; !bytes.Equal(got, want) {
		return t.fail("mapped read %d+%d: %s", off, n, diff(got, want, off))
	}
	return nil
}

func (t *tester) mapWrite() error {
	off, n, ok := t.viewSpan()
	if !ok {
		return t.remap()
	}
	t.logf("mapped write %d+%d", off, n)
	data := t.random(int(n))
	if _, err := t.view.WriteAt(data, off-t.viewOff); err != nil {
		return t.fail("mapped write %d+%d: %v", off, n, err)
	}
	copy(t.model[off:], data)
	return nil
}

// refuses reports whether the backend must refuse fallocate mode with
// EOPNOTSUPP.
func (t *tester) refuses(mode uint32) bool { return t.noFallocate || t.refused&mode != 0 }

// wantRefused checks that an operation the backend does not have failed
// with EOPNOTSUPP and changed nothing.
func (t *tester) wantRefused(err error, what string) error {
	if err := t.wantErrno(err, syscall.EOPNOTSUPP, what+" (not supported by the backend)"); err != nil {
		return err
	}
	return t.compareAll("after a refused " + what)
}

// refusedModes returns the fallocate modes the filesystem of dir refuses,
// found with a scratch file there: what the passthrough backend must
// refuse too.
func refusedModes(dir string) (uint32, error) {
	f, err := os.CreateTemp(dir, "fsx-probe-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, 4*pg)); err != nil {
		return 0, err
	}
	var refused uint32
	for _, mode := range []uint32{unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE} {
		if errors.Is(unix.Fallocate(int(f.Fd()), mode, pg, pg), syscall.EOPNOTSUPP) {
			refused |= mode
		}
	}
	return refused, nil
}

// backingCheck fsyncs, then reads the backing file as any program would
// and compares it, size included, with the model.
func (t *tester) backingCheck() error {
	t.logf("fsync and read the backing file")
	if err := t.f.Sync(); err != nil {
		return t.fail("fsync: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(t.cfg.BackingDir, "fsx"))
	if err != nil {
		return t.fail("read the backing file: %v", err)
	}
	if !bytes.Equal(got, t.model) {
		return t.fail("backing file of %d bytes differs from the model's %d: %s", len(got), len(t.model), diff(got, t.model, 0))
	}
	return nil
}

// outsideChange fsyncs (so no local change is pending), then writes or
// truncates the backing file directly, as another program would, and
// reopens the file: the open must notice the change and drop the cache.
func (t *tester) outsideChange() error {
	if err := t.f.Sync(); err != nil {
		return t.fail("fsync: %v", err)
	}
	b, err := os.OpenFile(filepath.Join(t.cfg.BackingDir, "fsx"), os.O_RDWR, 0)
	if err != nil {
		return t.fail("open the backing file: %v", err)
	}
	defer b.Close()
	if t.r.IntN(3) == 0 {
		n := t.r.Int64N(t.cfg.MaxSize)
		t.logf("outside truncate %d", n)
		t.unmapIfPast(n)
		if err := b.Truncate(n); err != nil {
			return t.fail("outside truncate: %v", err)
		}
		t.setSize(n)
	} else {
		off, n := t.span(16 << 10)
		data := t.random(int(n))
		t.logf("outside write %d+%d", off, n)
		if _, err := b.WriteAt(data, off); err != nil {
			return t.fail("outside write: %v", err)
		}
		if off+n > t.size() {
			t.setSize(off + n)
		}
		copy(t.model[off:], data)
	}
	if err := t.reopen(); err != nil {
		return err
	}
	return t.compareAll("after an outside change")
}

func (t *tester) wantErrno(err error, want syscall.Errno, what string) error {
	if !errors.Is(err, want) {
		return t.fail("%s: got %v, want %v", what, err, want)
	}
	return nil
}

func diff(got, want []byte, base int64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			j := i
			for j < len(got) && got[j] != want[j] {
				j++
			}
			return fmt.Sprintf("bytes %d..%d differ (first: got %#x, want %#x)", base+int64(i), base+int64(j), got[i], want[i])
		}
	}
	return "equal"
}

func sizeOf(fi interface{ Size() int64 }) any {
	if fi == nil {
		return "?"
	}
	return fi.Size()
}
