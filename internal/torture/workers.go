package torture

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// worker is one goroutine of a run.
type worker struct {
	t    *torture
	kind string
	name string
	r    *rand.Rand
	ops  atomic.Int64

	handles []file  // one per victim file
	views   []*view // one per victim file (fault, madvise, mapwrite)
	next    []int64 // sequential read position per file (read)
	buf     []byte

	noZero, noCollapse, noInsert, noPunch bool // remover modes the backend refused

	nbFiles []*nbFile // neighbour
	nbSeq   int
}

// maxViewBlocks bounds the length of a view.
const maxViewBlocks = 8

type view struct {
	v        mappedView
	pos, len int64 // in blocks
}

type nbFile struct {
	fm     *fileModel
	name   string
	h      file
	d      file // O_DIRECT handle, if the filesystem takes O_DIRECT
	blocks int64
}

func (w *worker) op(name string) {
	w.t.countOp(name)
	w.ops.Add(1)
}

func (w *worker) stopped() bool { return w.t.stopped.Load() }

func (w *worker) run() {
	defer w.cleanup()
	defer func() {
		// A panic in the engine is a violation: record it with its stack
		// and stop the run (the filesystem's state is unknown after it).
		if r := recover(); r != nil {
			w.t.panicked.Store(true)
			stack := strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")
			w.t.addViolation(Violation{Kind: KindPanic, Detail: fmt.Sprintf("%s: panic: %v", w.name, r), History: stack})
			w.t.stop()
		}
	}()
	if err := w.init(); err != nil {
		if !errors.Is(err, errWorkerUnsupported) {
			w.t.unexpected(w.name, "setup", err)
		}
		return
	}
	step := w.stepFunc()
	for !w.stopped() {
		step()
		// Let the other workers run: an op that hits the cache takes
		// microseconds, and without yielding a worker doing cheap ops keeps
		// its core for a whole scheduler slice while the removers wait.
		runtime.Gosched()
	}
}

var errWorkerUnsupported = errors.New("worker not supported by the backend")

func (w *worker) init() error {
	t := w.t
	fb := t.cfg.FileBlocks
	w.buf = make([]byte, fb*BlockSize)
	flags := os.O_RDWR
	if t.zoned() {
		var refused string
		if flags, refused = zonedFlags(w.kind, flags); refused != "" {
			t.countUnsupported(refused)
			return errWorkerUnsupported
		}
	}
	switch w.kind {
	case WorkNeighbour:
		return nil
	case WorkClean:
		if t.lib == nil || t.cfg.Backend != holefs.BackendLog {
			t.countUnsupported("clean")
			return errWorkerUnsupported
		}
		return nil
	case WorkVerify:
		flags = os.O_RDONLY
	case WorkDirect:
		flags |= syscall.O_DIRECT
	}

	for _, v := range t.files {
		h, err := t.fsys.OpenFile(v.name, flags, 0)
		if err != nil {
			if w.kind == WorkDirect && errors.Is(err, syscall.EINVAL) &&
				(t.cfg.Backend == holefs.BackendMemory || t.cfg.Target != "") {
				t.countUnsupported("direct-read")
				t.countUnsupported("direct-write")
				return errWorkerUnsupported
			}
			return fmt.Errorf("open %s: %w", v.name, err)
		}
		w.handles = append(w.handles, h)
		if w.kind == WorkVerify {
			// No readahead: a fill beyond what the verifier asked for, or
			// an async one after its read returned, would run outside its
			// exclusion from removers.
			if err := h.Fadvise(0, 0, unix.FADV_RANDOM); err != nil {
				return err
			}
		}
	}
	w.views = make([]*view, len(t.files))
	w.next = make([]int64, len(t.files))
	return nil
}

func (w *worker) cleanup() {
	if w.t.panicked.Load() {
		return // the filesystem may be broken: closing could hang or panic
	}
	for _, v := range w.views {
		if v != nil {
			_ = v.v.Unmap()
		}
	}
	for _, h := range w.handles {
		_ = h.Close()
	}
	for _, f := range w.nbFiles {
		w.nbDelete(f, false)
	}
}

func (w *worker) stepFunc() func() {
	switch w.kind {
	case WorkRead:
		return func() { w.read(false) }
	case WorkVerify:
		return func() { w.read(true) }
	case WorkFault:
		return w.fault
	case WorkMapWrite:
		return w.mapWrite
	case WorkReadahead:
		return w.readahead
	case WorkFadvise:
		return w.fadvise
	case WorkMadvise:
		return w.madvise
	case WorkWrite:
		return w.write
	case WorkDirect:
		return w.direct
	case WorkRemove:
		return w.remove
	case WorkFsync:
		return w.fsync
	case WorkCopy:
		return w.copyRange
	case WorkNeighbour:
		return w.neighbour
	case WorkClean:
		return w.clean
	}
	panic("torture: unknown worker kind " + w.kind)
}

// pick returns a random victim file's index.
func (w *worker) pick() int { return w.r.IntN(len(w.t.files)) }

// rangeIn returns a random block range of 1 to maxLen blocks inside the
// file's nominal size.
func (w *worker) rangeIn(maxLen int) (pos, n int64) {
	fb := w.t.cfg.FileBlocks
	n = int64(1 + w.r.IntN(max(1, min(maxLen, fb))))
	pos = int64(w.r.IntN(fb - int(n) + 1))
	return pos, n
}

func isErr(err error, errs ...syscall.Errno) bool {
	for _, e := range errs {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// read is a buffered reader (WorkRead) or the verifier (WorkVerify).
func (w *worker) read(verify bool) {
	i := w.pick()
	v := w.t.files[i]
	fb := int64(w.t.cfg.FileBlocks)
	var pos, n int64
	switch x := w.r.IntN(10); {
	case !verify && x < 4 && w.next[i] < fb:
		// Sequential: drives sync and async readahead.
		pos = w.next[i]
		n = min(int64(1+w.r.IntN(4)), fb-pos)
	case x < 5:
		pos, n = 0, fb
	default:
		pos, n = w.rangeIn(8)
	}
	name, rd := "read", readDesc{name: "read", worker: w.name}
	if verify {
		name, rd.name = "verify-read", "verify-read"
		v.gate.RLock()
		defer v.gate.RUnlock()
	}
	R := v.fm.beginRead()
	c, err := w.handles[i].ReadAt(w.buf[:n*BlockSize], pos*BlockSize)
	w.op(name)
	if err != nil && err != io.EOF {
		w.t.unexpected(w.name, fmt.Sprintf("ReadAt %s blocks [%d,%d)", v.name, pos, pos+n), err)
	}
	w.t.verify(v.fm, R, rd, pos, w.buf, c/BlockSize)
	w.next[i] = pos + n
	if w.next[i] >= fb || w.r.IntN(8) == 0 {
		w.next[i] = 0
	}
}

// mapView returns the worker's view of file i, mapping a new one (or
// replacing the old one with probability 1/remap).
func (w *worker) mapView(i int, writable bool, remap int) *view {
	vw := w.views[i]
	if vw != nil && w.r.IntN(remap) != 0 {
		return vw
	}
	if vw != nil {
		if err := vw.v.Unmap(); err != nil {
			w.t.unexpected(w.name, "Unmap", err)
		}
		w.op("munmap")
		w.views[i] = nil
	}
	// Views are small: mapped pages cannot be evicted, and views of whole
	// files would pin the whole (deliberately tiny) cache.
	pos, n := w.rangeIn(maxViewBlocks)
	mv, err := w.handles[i].Mmap(pos*BlockSize, n*BlockSize, writable)
	w.op("mmap")
	if err != nil {
		w.t.unexpected(w.name, "Mmap", err)
		return nil
	}
	w.views[i] = &view{v: mv, pos: pos, len: n}
	return w.views[i]
}

// fault reads through mapped views: faults on misses, direct page access
// on mapped pages.
func (w *worker) fault() {
	i := w.pick()
	v := w.t.files[i]
	vw := w.mapView(i, false, 16)
	if vw == nil {
		return
	}
	off := int64(w.r.IntN(int(vw.len)))
	n := min(int64(1+w.r.IntN(4)), vw.len-off)
	R := v.fm.beginRead()
	c, err := vw.v.ReadAt(w.buf[:n*BlockSize], off*BlockSize)
	w.op("fault")
	if err != nil && !isErr(err, syscall.EFAULT) { // EFAULT: past EOF
		w.t.unexpected(w.name, "view ReadAt "+v.name, err)
	}
	w.t.verify(v.fm, R, readDesc{name: "fault", worker: w.name}, vw.pos+off, w.buf, c/BlockSize)
}

// mapWrite writes whole signed blocks through writable views.
func (w *worker) mapWrite() {
	i := w.pick()
	v := w.t.files[i]
	vw := w.mapView(i, true, 16)
	if vw == nil {
		return
	}
	if w.r.IntN(10) == 0 {
		if err := vw.v.Sync(0, 0); err != nil {
			w.t.unexpected(w.name, "msync "+v.name, err)
		}
		w.op("msync")
		return
	}
	off := int64(w.r.IntN(int(vw.len)))
	pos := vw.pos + off
	o := v.fm.beginWrite("mapwrite", w.name, pos, 1, false)
	SignBlock(w.buf[:BlockSize], Sig{File: v.fm.id, Off: pos, Gen: o.start})
	unlock := w.t.dioLock(v)
	_, err := vw.v.WriteAt(w.buf[:BlockSize], off*BlockSize)
	unlock()
	w.op("mapwrite")
	switch {
	case err == nil:
		v.fm.end(o, -1, fateVoid, "")
	case isErr(err, syscall.EFAULT) && w.t.cfg.Target != "":
		// Past EOF on a real mapping: the copy may have stored part of
		// the block before a truncation zapped the page (see targetFS).
		v.fm.end(o, 0, fateUncertain, errString(err))
	case isErr(err, syscall.EFAULT): // past EOF: nothing written
		v.fm.end(o, 0, fateVoid, errString(err))
	default:
		v.fm.end(o, 0, fateUncertain, errString(err))
		w.t.unexpected(w.name, "view WriteAt "+v.name, err)
	}
}

func (w *worker) readahead() {
	i := w.pick()
	pos, n := w.rangeIn(w.t.cfg.FileBlocks)
	if err := w.handles[i].Readahead(pos*BlockSize, n*BlockSize); err != nil {
		w.t.unexpected(w.name, "Readahead", err)
	}
	w.op("readahead")
}

func (w *worker) fadvise() {
	i := w.pick()
	h := w.handles[i]
	pos, n := w.rangeIn(w.t.cfg.FileBlocks)
	var err error
	switch x := w.r.IntN(20); {
	case x < 13:
		err = h.Fadvise(pos*BlockSize, n*BlockSize, unix.FADV_WILLNEED)
		w.op("fadvise-willneed")
	case x < 18:
		if x == 17 {
			pos, n = 0, 0 // the whole file
		}
		err = h.Fadvise(pos*BlockSize, n*BlockSize, unix.FADV_DONTNEED)
		w.op("fadvise-dontneed")
	default:
		hints := []int{unix.FADV_NORMAL, unix.FADV_SEQUENTIAL, unix.FADV_RANDOM, unix.FADV_NOREUSE}
		err = h.Fadvise(0, 0, hints[w.r.IntN(len(hints))])
		w.op("fadvise-hint")
	}
	if err != nil {
		w.t.unexpected(w.name, "Fadvise", err)
	}
}

func (w *worker) madvise() {
	i := w.pick()
	vw := w.mapView(i, false, 16)
	if vw == nil {
		return
	}
	off := int64(w.r.IntN(int(vw.len)))
	n := int64(1 + w.r.IntN(int(vw.len-off)))
	var err error
	switch x := w.r.IntN(20); {
	case x < 13:
		err = vw.v.Madvise(off*BlockSize, n*BlockSize, unix.MADV_WILLNEED)
		w.op("madvise-willneed")
	case x < 18:
		err = vw.v.Madvise(off*BlockSize, n*BlockSize, unix.MADV_DONTNEED)
		w.op("madvise-dontneed")
	default:
		hints := []int{unix.MADV_NORMAL, unix.MADV_SEQUENTIAL, unix.MADV_RANDOM}
		err = vw.v.Madvise(off*BlockSize, n*BlockSize, hints[w.r.IntN(len(hints))])
		w.op("madvise-hint")
	}
	if err != nil {
		w.t.unexpected(w.name, "Madvise", err)
	}
}

// signRange signs blocks [pos, pos+n) of buf for file fm with generation gen.
func signRange(buf []byte, id uint64, pos, n int64, gen uint64) {
	for b := int64(0); b < n; b++ {
		SignBlock(buf[b*BlockSize:(b+1)*BlockSize], Sig{File: id, Off: pos + b, Gen: gen})
	}
}

// writeOp writes n signed blocks at pos through h and records it.
func (w *worker) writeOp(fm *fileModel, h file, name string, pos, n int64, weak bool) error {
	o := fm.beginWrite(name, w.name, pos, n, weak)
	signRange(w.buf, fm.id, pos, n, o.start)
	c, err := h.WriteAt(w.buf[:n*BlockSize], pos*BlockSize)
	w.op(name)
	rest := fateVoid
	if err != nil {
		rest = fateUncertain
	}
	fm.end(o, c/BlockSize, rest, errString(err))
	return err
}

func (w *worker) write() {
	i := w.pick()
	pos, n := w.rangeIn(4)
	if err := w.writeOp(w.t.files[i].fm, w.handles[i], "write", pos, n, false); err != nil {
		w.t.unexpected(w.name, "WriteAt", err)
	}
}

// direct does O_DIRECT reads and writes.
func (w *worker) direct() {
	i := w.pick()
	v := w.t.files[i]
	pos, n := w.rangeIn(8)
	defer w.t.dioLock(v)()
	if w.t.zoned() && w.r.IntN(4) != 0 {
		w.appendZone(i)
		return
	}
	if w.r.IntN(2) == 0 || w.t.zoned() {
		R := v.fm.beginRead()
		c, err := w.handles[i].ReadAt(w.buf[:n*BlockSize], pos*BlockSize)
		w.op("direct-read")
		if err != nil && err != io.EOF {
			w.t.unexpected(w.name, "O_DIRECT ReadAt", err)
		}
		w.t.verify(v.fm, R, readDesc{name: "direct-read", worker: w.name, direct: true}, pos, w.buf, c/BlockSize)
		return
	}
	if err := w.writeOp(v.fm, w.handles[i], "direct-write", pos, min(n, 4), true); err != nil {
		w.t.unexpected(w.name, "O_DIRECT WriteAt", err)
	}
}

// remove runs one block-removing operation. Removers exclude verify
// readers of the file (victim.gate), nothing else.
func (w *worker) remove() {
	if w.t.zoned() {
		w.zoneRemove()
		return
	}
	i := w.pick()
	v := w.t.files[i]
	h := w.handles[i]
	fm := v.fm
	fb := int64(w.t.cfg.FileBlocks)
	mb := int64(len(fm.blocks))
	maxLen := max(1, int(fb/4))
	// endRemove ends a remover's op: nothing happened on EINVAL (a
	// collapse or insert the current size does not allow) and EOPNOTSUPP
	// (memfs).
	endRemove := func(o *op, name string, err error) bool {
		switch {
		case err == nil:
			fm.end(o, -1, fateVoid, "")
		case isErr(err, syscall.EOPNOTSUPP):
			fm.end(o, 0, fateVoid, errString(err))
			w.t.countUnsupported(name)
			return false
		case isErr(err, syscall.EINVAL) && (name == "collapse" || name == "insert"):
			fm.end(o, 0, fateVoid, errString(err))
		default:
			fm.end(o, 0, fateUncertain, errString(err))
			w.t.unexpected(w.name, name+" "+v.name, err)
		}
		return true
	}
	gated := func(f func() error) error {
		v.gate.Lock()
		defer v.gate.Unlock()
		return f()
	}
	// restore brings the size back to the nominal one after a truncate,
	// collapse or insert (cutting off what an insert pushed past it).
	restore := func() {
		o := fm.beginRemove("truncate-up", w.name, fmt.Sprintf("to %d blocks", fb), fb, mb-fb)
		err := gated(func() error { return h.Truncate(fb * BlockSize) })
		w.op("truncate-up")
		endRemove(o, "truncate-up", err)
	}
	x := w.r.IntN(100)
	switch {
	case x >= 85 && !w.noInsert:
		pos := int64(w.r.IntN(int(fb - 1)))
		n := int64(1 + w.r.IntN(maxLen))
		o := fm.beginInsert(w.name, pos, n)
		err := gated(func() error { return h.Fallocate(unix.FALLOC_FL_INSERT_RANGE, pos*BlockSize, n*BlockSize) })
		w.op("insert")
		if !endRemove(o, "insert", err) {
			w.noInsert = true
			return
		}
		restore()
	case x >= 70 && !w.noCollapse:
		pos, n := w.rangeIn(maxLen)
		o := fm.beginCollapse(w.name, pos, n)
		err := gated(func() error { return h.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, pos*BlockSize, n*BlockSize) })
		w.op("collapse")
		if !endRemove(o, "collapse", err) {
			w.noCollapse = true
			return
		}
		restore()
	case x >= 50 || w.noPunch && (x < 30 || w.noZero):
		// Without punch and zero (ext2) truncate is the one remover.
		s := int64(w.r.IntN(int(fb)))
		o := fm.beginRemove("truncate-down", w.name, fmt.Sprintf("to %d blocks", s), s, mb-s)
		err := gated(func() error { return h.Truncate(s * BlockSize) })
		w.op("truncate-down")
		endRemove(o, "truncate-down", err)
		restore()
	case x >= 30 && !w.noZero:
		pos, n := w.rangeIn(maxLen)
		mode := uint32(unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE)
		if w.r.IntN(4) == 0 {
			mode = unix.FALLOC_FL_ZERO_RANGE // may extend the file up to its nominal size
		}
		o := fm.beginRemove("zero", w.name, fmt.Sprintf("blocks [%d,%d)", pos, pos+n), pos, n)
		err := gated(func() error { return h.Fallocate(mode, pos*BlockSize, n*BlockSize) })
		w.op("zero")
		if !endRemove(o, "zero", err) {
			w.noZero = true
		}
	default:
		pos, n := w.rangeIn(maxLen)
		o := fm.beginRemove("punch", w.name, fmt.Sprintf("blocks [%d,%d)", pos, pos+n), pos, n)
		err := gated(func() error {
			return h.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, pos*BlockSize, n*BlockSize)
		})
		w.op("punch")
		if !endRemove(o, "punch", err) {
			w.noPunch = true
		}
	}
}

func (w *worker) fsync() {
	// Paced: an fsync of a clean file costs next to nothing, and a loop of
	// them would only take a core away from the racing workers.
	time.Sleep(100 * time.Microsecond)
	if w.r.IntN(10) == 0 {
		if err := w.t.fsys.Sync(); err != nil {
			w.t.unexpected(w.name, "FS.Sync", err)
		}
		w.op("syncfs")
		return
	}
	i := w.pick()
	if err := w.handles[i].Sync(); err != nil {
		w.t.unexpected(w.name, "Sync "+w.t.files[i].name, err)
	}
	w.op("fsync")
}

// clean runs a pass of the log-structured backend's cleaner: it moves the
// live blocks of the emptiest segment, the shared files' among them, under
// every other worker.
func (w *worker) clean() {
	time.Sleep(200 * time.Microsecond)
	if _, err := w.t.lib.Clean(); err != nil {
		w.t.unexpected(w.name, "Clean", err)
	}
	w.op("clean")
}

// copyRange copies blocks within one file (copy_file_range). Copies
// between files would put one file's signed data into another, which the
// checker must always call foreign; within a file the model knows the
// copied blocks' values.
func (w *worker) copyRange() {
	i := w.pick()
	v := w.t.files[i]
	h := w.handles[i]
	fb := w.t.cfg.FileBlocks
	n := int64(1 + w.r.IntN(min(4, fb/2)))
	src := int64(w.r.IntN(fb - int(n) + 1))
	dst := int64(-1)
	for try := 0; try < 8; try++ {
		d := int64(w.r.IntN(fb - int(n) + 1))
		if d+n <= src || src+n <= d {
			dst = d
			break
		}
	}
	if dst < 0 {
		return
	}
	o := v.fm.beginCopy(w.name, src, dst, n)
	c, err := h.CopyRange(h, src*BlockSize, dst*BlockSize, n*BlockSize)
	w.op("copy")
	rest := fateVoid
	if err != nil {
		rest = fateUncertain
		w.t.unexpected(w.name, "CopyRange "+v.name, err)
	} else if c%BlockSize != 0 {
		rest = fateUncertain // a partly copied block
	}
	v.fm.end(o, int(c/BlockSize), rest, errString(err))
}

// neighbour keeps creating, writing, verifying and deleting small files,
// so the blocks removers free are reused at once (extentfs allocates the
// lowest free block) and any stale page of a victim that writeback sends
// to a freed block lands in a neighbour's data.
func (w *worker) neighbour() {
	t := w.t
	extent := t.directOK
	nb := int64(max(4, t.cfg.FileBlocks/4))
	w.nbSeq++
	name := fmt.Sprintf("nb-%s-%d", w.name, w.nbSeq)
	id := t.newID()
	f := &nbFile{fm: t.model.newFile(id, name, int(nb)), name: name, blocks: nb}
	h, err := t.fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	w.op("nb-create")
	if err != nil {
		t.unexpected(w.name, "create "+name, err)
		return
	}
	f.h = h
	if extent {
		if f.d, err = t.fsys.OpenFile(name, os.O_RDWR|syscall.O_DIRECT, 0); err != nil {
			t.unexpected(w.name, "open O_DIRECT "+name, err)
		}
	}
	w.nbFiles = append(w.nbFiles, f)
	// Write it: straight to the device with O_DIRECT, or through the cache
	// and fsync, so its data is on the device before long either way.
	if f.d != nil && w.r.IntN(2) == 0 {
		// Strict (not weak): the new file was never cached.
		if err := w.writeOp(f.fm, f.d, "nb-direct-write", 0, nb, false); err != nil {
			t.unexpected(w.name, "O_DIRECT write "+name, err)
		}
	} else {
		if err := w.writeOp(f.fm, f.h, "nb-write", 0, nb, false); err != nil {
			t.unexpected(w.name, "write "+name, err)
		}
		if err := f.h.Sync(); err != nil {
			t.unexpected(w.name, "fsync "+name, err)
		}
		w.op("nb-fsync")
	}
	w.nbVerify(f)
	if len(w.nbFiles) > 3 {
		old := w.nbFiles[0]
		w.nbFiles = w.nbFiles[1:]
		w.nbDelete(old, true)
	}
}

// nbVerify reads a neighbour file back through the cache and, on extentfs,
// from the device: a victim's stale page written back to a block the
// neighbour now owns shows up here as foreign data.
func (w *worker) nbVerify(f *nbFile) {
	for _, direct := range []bool{false, true} {
		h, name := f.h, "nb-read"
		if direct {
			if f.d == nil {
				continue
			}
			h, name = f.d, "nb-direct-read"
		}
		R := f.fm.beginRead()
		c, err := h.ReadAt(w.buf[:f.blocks*BlockSize], 0)
		w.op(name)
		if err != nil && err != io.EOF {
			w.t.unexpected(w.name, name+" "+f.name, err)
		}
		w.t.verify(f.fm, R, readDesc{name: name, worker: w.name, direct: direct}, 0, w.buf, c/BlockSize)
	}
}

// nbDelete verifies a neighbour file one last time (if check), then
// removes it; closing its last handle frees its blocks.
func (w *worker) nbDelete(f *nbFile, check bool) {
	if check {
		w.nbVerify(f)
	}
	if err := w.t.fsys.Remove(f.name); err != nil {
		w.t.unexpected(w.name, "remove "+f.name, err)
	}
	if f.d != nil {
		_ = f.d.Close()
	}
	if err := f.h.Close(); err != nil {
		w.t.unexpected(w.name, "close "+f.name, err)
	}
	w.op("nb-remove")
}
