package crash

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/internal/torture"
	"github.com/holefs/holefs/vfs"
)

// The workload's names: files in the root and in one directory, so that
// renames cross directories and a directory fsync has entries to keep.
var (
	rootNames = []string{"a0", "a1", "a2", "a3", "a4", "a5"}
	dirNames  = []string{"d/b0", "d/b1", "d/b2", "d/b3"}
	dirs      = []string{".", "d"}
)

const (
	maxFileBlocks = 16 // no file grows past this many blocks
	maxFiles      = 8  // files alive at once, named or open
)

type opKind uint8

const (
	opMkdir opKind = iota + 1
	opCreate
	opWrite  // buffered
	opDirect // O_DIRECT
	opPunch
	opZero
	opTruncate
	opFalloc
	opFsync
	opFsyncDir
	opSync
	opUnlink
	opRename
	opClose
	opRead
	opCloseFS
	opMknod // a FIFO: a name and an inode with no data
)

// op is one call into the filesystem.
type op struct {
	kind     opKind
	id       uint64 // the file
	path, to string
	off, n   int64 // in blocks
	keep     bool  // FALLOC_FL_KEEP_SIZE
	direct   bool  // opClose: the O_DIRECT handle
}

func (o op) String() string {
	r := func() string { return fmt.Sprintf("#%d [%d,%d)", o.id, o.off, o.off+o.n) }
	keep := map[bool]string{true: " keep-size"}[o.keep]
	switch o.kind {
	case opMkdir:
		return "mkdir " + o.path
	case opMknod:
		return "mkfifo " + o.path
	case opCreate:
		return fmt.Sprintf("create %s #%d", o.path, o.id)
	case opWrite:
		return "write " + r()
	case opDirect:
		return "direct-write " + r()
	case opPunch:
		return "punch " + r()
	case opZero:
		return "zero-range " + r() + keep
	case opTruncate:
		return fmt.Sprintf("truncate #%d to %d blocks", o.id, o.n)
	case opFalloc:
		return "fallocate " + r() + keep
	case opFsync:
		return fmt.Sprintf("fsync #%d", o.id)
	case opFsyncDir:
		return "fsync dir " + o.path
	case opSync:
		return "sync"
	case opUnlink:
		return "unlink " + o.path
	case opRename:
		return "rename " + o.path + " " + o.to
	case opClose:
		return fmt.Sprintf("close #%d%s", o.id, map[bool]string{true: " (O_DIRECT)"}[o.direct])
	case opRead:
		return fmt.Sprintf("read #%d", o.id)
	case opCloseFS:
		return "close filesystem"
	}
	return fmt.Sprintf("op(%d)", o.kind)
}

// opRecord is an op as run: its recorder marks bound the device I/O it
// did, and end < 0 until it returned.
type opRecord struct {
	op         op
	start, end int
	err        error
	// faulted and faultedEnd: an injected fault had fired when the op
	// started, when it returned.
	faulted, faultedEnd bool
}

// workload runs a random sequence of operations on one open filesystem
// and keeps the model of what they did. Its generator is a pure function
// of the seed and the model, so a seed replays the same operations.
type workload struct {
	rng    *rand.Rand
	fsys   *holefs.FS
	mark   func(label string) int // recorder mark; nil: none
	budget int64                  // blocks the files may hold at once

	// mu guards the model against the commit hooks. The workload runs
	// every commit on its own goroutine (background commits are off),
	// but the hooks read the model while an op is in flight.
	mu     sync.Mutex
	files  map[uint64]*fileModel
	byIno  map[uint64]uint64
	ns     nsState
	ops    []opRecord // ops[0] is unused: op numbers start at 1
	cur    *op        // the op in flight
	nextID uint64

	queue []op // follow-up ops generated together
	// noFallocate leaves out punch, zero range and fallocate (ext2 has
	// none).
	noFallocate bool
	// runtime collects what went wrong while the workload ran (an op
	// failing when nothing was injected, a read returning wrong data).
	runtime []string
	// fired, if set, reports whether an injected fault has fired: op
	// errors are then expected (they are kept in the op records), and
	// reads are not verified under fault injection.
	fired func() bool
	// expectErr, if set, accepts op errors besides those of injected
	// faults (ENOSPC on a full image).
	expectErr func(error) bool
}

// budget returns how many blocks the workload's files may hold on a
// device of nblocks blocks: enough to fill it, with room for the blocks
// waiting in quarantine and, with data checksums or ext2 (outOfPlace),
// for the out-of-place copies of blocks being rewritten or zeroed, or
// of ext2's indirect blocks.
func budget(nblocks int64, outOfPlace bool) int64 {
	if outOfPlace {
		return nblocks / 2
	}
	return nblocks * 3 / 4
}

func newWorkload(seed uint64, fsys *holefs.FS, budget int64, mark func(string) int) *workload {
	return &workload{
		rng:   rand.New(rand.NewPCG(seed, 0x6372617368)),
		fsys:  fsys,
		mark:  mark,
		files: map[uint64]*fileModel{}, byIno: map[uint64]uint64{},
		ns:     nsState{names: map[string]uint64{}, sizes: map[uint64]int64{}},
		ops:    []opRecord{{}},
		budget: budget,
	}
}

// snapshot returns the model's state for a commit running now.
func (w *workload) snapshot() snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := snapshot{op: len(w.ops), before: w.ns.clone()}
	s.after = s.before
	if w.cur != nil {
		s.op = len(w.ops) - 1
		s.after = w.ns.clone()
		applyNS(s.after, *w.cur)
	}
	return s
}

// run runs script, or if it is nil n generated operations, then closes
// every handle and the filesystem.
func (w *workload) run(n int, script []op) {
	w.do(op{kind: opMkdir, path: "d"})
	if script != nil {
		w.queue, n = script, len(script)
	}
	for range n {
		if len(w.queue) == 0 {
			w.generate()
		}
		o := w.queue[0]
		w.queue = w.queue[1:]
		if w.valid(o) {
			w.do(o)
		}
	}
	w.queue = nil
	for _, id := range slices.Sorted(maps.Keys(w.files)) {
		f := w.files[id]
		if f.buf != nil {
			w.do(op{kind: opClose, id: id})
		}
		if f.dio != nil {
			w.do(op{kind: opClose, id: id, direct: true})
		}
	}
	w.do(op{kind: opCloseFS})
}

// valid reports whether a queued op still makes sense: an op before it
// may have failed (fault injection) and left its file or name missing.
func (w *workload) valid(o op) bool {
	switch o.kind {
	case opUnlink:
		id, ok := w.ns.names[o.path]
		return ok && id != 0
	case opRename:
		id, ok := w.ns.names[o.path]
		return ok && id != 0
	case opCreate, opMknod:
		_, taken := w.ns.names[o.path]
		return !taken
	case opFsyncDir, opSync, opMkdir, opCloseFS:
		return true
	case opClose:
		f := w.files[o.id]
		return f != nil && (o.direct && f.dio != nil || !o.direct && f.buf != nil)
	case opWrite:
		f := w.files[o.id]
		return f != nil && !f.gone && (f.names > 0 || f.buf != nil)
	case opDirect:
		f := w.files[o.id]
		return f != nil && !f.gone && (f.names > 0 || f.dio != nil)
	}
	f := w.files[o.id]
	return f != nil && !f.gone && (f.names > 0 || f.open())
}

// do runs one op and applies it to the model.
func (w *workload) do(o op) error {
	w.mu.Lock()
	w.cur = &o
	w.ops = append(w.ops, opRecord{op: o, start: w.markf("op %d start: %v", len(w.ops), o), end: -1, faulted: w.faulted()})
	seq := len(w.ops) - 1
	w.mu.Unlock()

	written, err := w.call(o, seq)

	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur = nil
	w.ops[seq].err = err
	w.ops[seq].faultedEnd = w.faulted()
	if err != nil && !w.ops[seq].faultedEnd && (w.expectErr == nil || !w.expectErr(err)) {
		w.runtime = append(w.runtime, fmt.Sprintf("op %d (%v): %v", seq, o, err))
	}
	w.applyData(o, seq, written, err)
	if err == nil {
		applyNS(w.ns, o)
	} else if _, named := w.ns.sizes[o.id]; named && written > 0 {
		w.ns.sizes[o.id] = w.files[o.id].size // a short write
	}
	w.ops[seq].end = w.markf("op %d end", seq)
	return err
}

func (w *workload) faulted() bool { return w.fired != nil && w.fired() }

func (w *workload) markf(format string, a ...any) int {
	if w.mark == nil {
		return len(w.ops)
	}
	return w.mark(fmt.Sprintf(format, a...))
}

// handleKind says which handle of a file an op needs.
type handleKind uint8

const (
	anyHandle handleKind = iota // fsync, fallocate, truncate, read
	bufHandle                   // a buffered write
	dioHandle                   // an O_DIRECT write
)

// handle returns an open handle of file f of kind k, opening one by a
// name of the file if none is open.
func (w *workload) handle(f *fileModel, k handleKind) (*holefs.File, error) {
	switch {
	case k == anyHandle && f.buf == nil && f.dio != nil:
		return f.dio, nil
	case k == dioHandle && f.dio != nil:
		return f.dio, nil
	case k != dioHandle && f.buf != nil:
		return f.buf, nil
	}
	h, flag := &f.buf, os.O_RDWR
	if k == dioHandle {
		h, flag = &f.dio, os.O_RDWR|syscall.O_DIRECT
	}
	name := w.nameOf(f.id)
	if name == "" {
		return nil, fmt.Errorf("file #%d has no name and no handle", f.id)
	}
	fh, err := w.fsys.OpenFile(name, flag, 0)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	*h = fh
	w.mu.Unlock()
	return fh, nil
}

func (w *workload) nameOf(id uint64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range slices.Sorted(maps.Keys(w.ns.names)) {
		if w.ns.names[p] == id {
			return p
		}
	}
	return ""
}

// signed returns n blocks of file id from offset off, generation gen.
func signed(id uint64, off, n int64, gen int) []byte {
	p := make([]byte, n*BlockSize)
	for i := range n {
		torture.SignBlock(p[i*BlockSize:(i+1)*BlockSize], torture.Sig{File: id, Off: off + i, Gen: uint64(gen)})
	}
	return p
}

// call makes op o's filesystem call. It returns the bytes a write wrote.
func (w *workload) call(o op, seq int) (int64, error) {
	if o.kind == opWrite || o.kind == opDirect {
		k := bufHandle
		if o.kind == opDirect {
			k = dioHandle
		}
		h, err := w.handle(w.files[o.id], k)
		if err != nil {
			return 0, err
		}
		n, err := h.WriteAt(signed(o.id, o.off, o.n, seq), o.off*BlockSize)
		return int64(n), err
	}
	return 0, w.callOther(o)
}

func (w *workload) callOther(o op) error {
	f := w.files[o.id]
	const bs = BlockSize
	switch o.kind {
	case opMkdir:
		return w.fsys.Mkdir(o.path, 0o755)
	case opMknod:
		return w.fsys.Mknod(o.path, syscall.S_IFIFO|0o644, 0)
	case opCreate:
		h, err := w.fsys.OpenFile(o.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		st, err := h.Stat()
		if err != nil {
			return err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		ino := st.Sys().(*vfs.Attr).Ino
		w.files[o.id] = &fileModel{id: o.id, ino: ino, hist: map[int64][]*event{}, alloc: map[int64]bool{}, buf: h}
		w.byIno[ino] = o.id
		return nil
	case opPunch, opZero, opFalloc:
		h, err := w.handle(f, anyHandle)
		if err != nil {
			return err
		}
		mode := map[opKind]uint32{opPunch: unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE,
			opZero: unix.FALLOC_FL_ZERO_RANGE}[o.kind]
		if o.keep {
			mode |= unix.FALLOC_FL_KEEP_SIZE
		}
		return h.Fallocate(mode, o.off*bs, o.n*bs)
	case opTruncate:
		h, err := w.handle(f, anyHandle)
		if err != nil {
			return err
		}
		return h.Truncate(o.n * bs)
	case opFsync:
		h, err := w.handle(f, anyHandle)
		if err != nil {
			return err
		}
		return h.Sync()
	case opFsyncDir:
		d, err := w.fsys.OpenFile(o.path, os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		return errors.Join(d.Sync(), d.Close())
	case opSync:
		return w.fsys.Sync()
	case opUnlink:
		return w.fsys.Remove(o.path)
	case opRename:
		return w.fsys.Rename(o.path, o.to)
	case opClose:
		w.mu.Lock()
		h := &f.buf
		if o.direct {
			h = &f.dio
		}
		fh := *h
		*h = nil
		w.mu.Unlock()
		return fh.Close()
	case opRead:
		return w.read(f)
	case opCloseFS:
		return w.fsys.Close()
	}
	return fmt.Errorf("unknown op %v", o)
}

// read reads file f whole through a handle and compares it with the model:
// the running filesystem must return exactly the latest data.
func (w *workload) read(f *fileModel) error {
	h, err := w.handle(f, anyHandle)
	if err != nil {
		return err
	}
	w.mu.Lock()
	size := f.size
	w.mu.Unlock()
	p := make([]byte, size+BlockSize)
	n, err := h.ReadAt(p, 0)
	if err != nil && err != io.EOF {
		return err
	}
	if w.fired != nil || f.uncertain {
		// A read may show data whose writeback failed, or a failed
		// write's, or not: only its error is checked.
		return nil
	}
	if int64(n) != size {
		w.runtime = append(w.runtime, fmt.Sprintf("read #%d: %d bytes, want the size %d", f.id, n, size))
		return nil
	}
	for off := range size / BlockSize {
		b := p[off*BlockSize : (off+1)*BlockSize]
		if want := f.current(off); !matches(b, f.id, off, want) {
			w.runtime = append(w.runtime, fmt.Sprintf("read #%d block %d: %s, want %s", f.id, off, describe(b), genName(want)))
		}
	}
	return nil
}

// matches reports whether b is block off of file id, generation gen (0:
// zeros).
func matches(b []byte, id uint64, off int64, gen int) bool {
	sig, st := torture.ParseBlock(b)
	if gen == 0 {
		return st == torture.BlockZero
	}
	return st == torture.BlockSigned && sig == torture.Sig{File: id, Off: off, Gen: uint64(gen)}
}

// describe says what a block holds.
func describe(b []byte) string {
	sig, st := torture.ParseBlock(b)
	if st != torture.BlockSigned {
		return st.String()
	}
	return fmt.Sprintf("file #%d block %d gen %d", sig.File, sig.Off, sig.Gen)
}

func genName(gen int) string {
	if gen == 0 {
		return "zeros"
	}
	return fmt.Sprintf("gen %d", gen)
}

// applyNS applies op o's effect on names and sizes to s. It is used for
// the model and for a commit's view of the op in flight.
func applyNS(s nsState, o op) {
	grow := func(end int64) {
		if sz, ok := s.sizes[o.id]; ok {
			s.sizes[o.id] = max(sz, end*BlockSize)
		}
	}
	switch o.kind {
	case opMkdir:
		s.names[o.path] = 0
	case opMknod:
		s.names[o.path] = specialFile
	case opCreate:
		s.names[o.path] = o.id
		s.sizes[o.id] = 0
	case opWrite, opDirect:
		grow(o.off + o.n)
	case opZero, opFalloc:
		if !o.keep {
			grow(o.off + o.n)
		}
	case opTruncate:
		if _, ok := s.sizes[o.id]; ok {
			s.sizes[o.id] = o.n * BlockSize
		}
	case opUnlink:
		id := s.names[o.path]
		delete(s.names, o.path)
		if !slices.Contains(slices.Collect(maps.Values(s.names)), id) {
			delete(s.sizes, id)
		}
	case opRename:
		victim, had := s.names[o.to]
		s.names[o.to] = s.names[o.path]
		delete(s.names, o.path)
		if had && !slices.Contains(slices.Collect(maps.Values(s.names)), victim) {
			delete(s.sizes, victim)
		}
	}
}

// applyData applies op seq's effect on file contents, handles and
// durability to the model. A failed write is recorded: the blocks it
// reports written as usual, the others as failed (they may or may not
// hold its data, and no sync makes them durable); it grows the file by
// what it reports written;
// any other failed op changed nothing (fallocate and truncate fail before
// they touch the map) except that a failed close still releases its
// handle. The caller holds w.mu.
func (w *workload) applyData(o op, seq int, written int64, err error) {
	f := w.files[o.id]
	span := func(fn func(off int64)) {
		for off := o.off; off < o.off+o.n; off++ {
			fn(off)
		}
	}
	synced := func(f *fileModel) {
		for _, e := range f.unsynced {
			e.synced = seq
		}
		f.unsynced = nil
	}
	abandon := func(f *fileModel) {
		for _, e := range f.unsynced {
			// Removals are metadata: the next commit makes them durable
			// all the same.
			e.failed = e.kind != evRemove
		}
		f.unsynced = nil
	}
	if o.kind == opWrite || o.kind == opDirect {
		kind := map[bool]eventKind{false: evWrite, true: evDirect}[o.kind == opDirect]
		if err != nil {
			// A failed write leaves its range unspecified, cached data
			// not yet durable included: an O_DIRECT write writes back
			// the range's dirty pages first, and that may be what failed.
			span(func(off int64) {
				for _, e := range f.hist[off] {
					if e.kind != evRemove && e.synced == 0 {
						e.failed = true
					}
				}
			})
		}
		span(func(off int64) {
			e := &event{op: seq, kind: kind, failed: err != nil && (off-o.off)*BlockSize >= written}
			f.hist[off] = append(f.hist[off], e)
			if !e.failed {
				f.unsynced = append(f.unsynced, e)
			}
			f.alloc[off] = true
		})
		if written > 0 {
			f.size = max(f.size, o.off*BlockSize+written)
		}
		f.uncertain = f.uncertain || err != nil
	}
	if err != nil {
		// A failed fsync or sync promises nothing about the writes it
		// covered, and reports that once (Linux's errseq): a later one
		// may succeed without them.
		switch o.kind {
		case opFsync:
			abandon(f)
		case opSync, opCloseFS:
			for _, f := range w.files {
				abandon(f)
			}
		}
		w.evict()
		return
	}
	grow := func() {
		if !o.keep {
			f.size = max(f.size, (o.off+o.n)*BlockSize)
		}
	}
	switch o.kind {
	case opCreate:
		f.names++
	case opPunch:
		span(func(off int64) { f.add(off, &event{op: seq, kind: evRemove}); delete(f.alloc, off) })
	case opZero:
		span(func(off int64) { f.add(off, &event{op: seq, kind: evRemove}); f.alloc[off] = true })
		grow()
	case opFalloc:
		span(func(off int64) { f.alloc[off] = true })
		grow()
	case opTruncate:
		// Truncating down frees every block from the new end on,
		// fallocated ones past the old end included; truncating up
		// frees nothing.
		for off := o.n; o.n*BlockSize < f.size && off < maxFileBlocks; off++ {
			if len(f.hist[off]) > 0 || f.alloc[off] {
				f.add(off, &event{op: seq, kind: evRemove})
			}
			delete(f.alloc, off)
		}
		f.size = o.n * BlockSize
	case opFsync:
		synced(f)
	case opSync, opCloseFS:
		for _, f := range w.files {
			synced(f)
		}
	case opUnlink:
		if f := w.files[w.ns.names[o.path]]; f != nil { // not a FIFO
			f.names--
		}
	case opRename:
		if f := w.files[w.ns.names[o.to]]; f != nil {
			f.names--
		}
	}
	w.evict()
}

// evict marks files with no name and no open handle gone, as the
// filesystem evicts them. The caller holds w.mu.
func (w *workload) evict() {
	for _, f := range w.files {
		if !f.gone && f.names == 0 && !f.open() {
			f.gone = true
			f.alloc = nil
		}
	}
}
