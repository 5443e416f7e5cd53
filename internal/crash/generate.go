package crash

import (
	"maps"
	"slices"
)

// generate queues the next operation, and sometimes the follow-ups that
// make it dangerous: a removal followed by another file allocating (the
// freed blocks are the lowest free ones, so they are reused as soon as the
// quarantine lets them go) and an fsync.
func (w *workload) generate() {
	live := w.liveFiles()
	named := w.namedFiles()
	var sized []*fileModel
	for _, f := range live {
		if f.size > 0 {
			sized = append(sized, f)
		}
	}
	type choice struct {
		weight int
		gen    func() bool // queues ops; false if it found nothing to do
	}
	create := 8
	if len(live) < 3 {
		create = 60
	}
	punch, zero, falloc := 6, 4, 5
	if w.noFallocate {
		punch, zero, falloc = 0, 0, 0
	}
	choices := []choice{
		{create, w.genCreate},
		{14, func() bool { return w.genWrite(pick(w, live), false) }},
		{6, func() bool { return w.genWrite(pick(w, live), true) }},
		{punch, func() bool { return w.genRemove(pick(w, sized), opPunch) }},
		{zero, func() bool { return w.genRemove(pick(w, sized), opZero) }},
		{5, func() bool { return w.genTruncate(pick(w, live)) }},
		{falloc, func() bool { return w.genFalloc(pick(w, live)) }},
		{7, func() bool { return w.push(op{kind: opFsync, id: idOf(pick(w, live))}) }},
		{4, func() bool { return w.push(op{kind: opFsyncDir, path: dirs[w.rng.IntN(len(dirs))]}) }},
		{3, func() bool { return w.push(op{kind: opSync}) }},
		{4, func() bool { return w.genUnlink(pick(w, named)) }},
		{5, func() bool { return w.genRename(pick(w, named)) }},
		{5, func() bool { return w.genClose(pick(w, live)) }},
		{3, func() bool { return w.push(op{kind: opRead, id: idOf(pick(w, live))}) }},
		{2, w.genFIFO},
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	for len(w.queue) == 0 {
		r := w.rng.IntN(total)
		for _, c := range choices {
			if r -= c.weight; r < 0 {
				c.gen()
				break
			}
		}
	}
}

// pick returns a random element of fs, or nil.
func pick(w *workload, fs []*fileModel) *fileModel {
	if len(fs) == 0 {
		return nil
	}
	return fs[w.rng.IntN(len(fs))]
}

func idOf(f *fileModel) uint64 {
	if f == nil {
		return 0
	}
	return f.id
}

// push queues o unless it names no file when it needs one.
func (w *workload) push(o op) bool {
	if o.id == 0 && (o.kind == opFsync || o.kind == opRead) {
		return false
	}
	w.queue = append(w.queue, o)
	return true
}

// liveFiles are the files not evicted, in id order; namedFiles those with
// a name.
func (w *workload) liveFiles() []*fileModel {
	var fs []*fileModel
	for _, id := range slices.Sorted(maps.Keys(w.files)) {
		if f := w.files[id]; !f.gone {
			fs = append(fs, f)
		}
	}
	return fs
}

func (w *workload) namedFiles() []*fileModel {
	var fs []*fileModel
	for _, f := range w.liveFiles() {
		if f.names > 0 {
			fs = append(fs, f)
		}
	}
	return fs
}

// allocated is the number of blocks the model's files may hold.
func (w *workload) allocated() int64 {
	n := 0
	for _, f := range w.files {
		n += len(f.alloc)
	}
	return int64(n)
}

// fits reports whether f may get the blocks [off, off+n) within the
// budget.
func (w *workload) fits(f *fileModel, off, n int64) bool {
	extra := int64(0)
	for o := off; o < off+n; o++ {
		if !f.alloc[o] {
			extra++
		}
	}
	return off+n <= maxFileBlocks && w.allocated()+extra <= w.budget
}

func (w *workload) freeNames() []string {
	var free []string
	for _, p := range append(slices.Clone(rootNames), dirNames...) {
		if _, ok := w.ns.names[p]; !ok {
			free = append(free, p)
		}
	}
	return free
}

func (w *workload) genCreate() bool {
	free := w.freeNames()
	if len(free) == 0 || len(w.liveFiles()) >= maxFiles {
		return false
	}
	w.nextID++
	id := w.nextID
	w.push(op{kind: opCreate, id: id, path: free[w.rng.IntN(len(free))]})
	// The file does not exist in the model yet: fits counts from zero.
	if n := 1 + w.rng.Int64N(4); w.allocated()+n <= w.budget {
		w.push(op{kind: opWrite, id: id, n: n})
	}
	if w.rng.IntN(2) == 0 {
		w.push(op{kind: opFsync, id: id})
	}
	return true
}

// genWrite writes 1 to 4 blocks of f: over its data, at its end, or past
// it (leaving a hole).
func (w *workload) genWrite(f *fileModel, direct bool) bool {
	if f == nil || (direct && f.names == 0 && f.dio == nil) || (!direct && f.names == 0 && f.buf == nil) {
		return false
	}
	end := f.size / BlockSize
	n := 1 + w.rng.Int64N(4)
	var off int64
	switch w.rng.IntN(3) {
	case 0:
		off = w.rng.Int64N(end + 1)
	case 1:
		off = end
	default:
		off = end + w.rng.Int64N(3)
	}
	if !w.fits(f, off, n) {
		return false
	}
	kind := opWrite
	if direct {
		kind = opDirect
	}
	return w.push(op{kind: kind, id: f.id, off: off, n: n})
}

// genRemove punches or zeroes a range of f's data, then lets another file
// allocate and write.
func (w *workload) genRemove(f *fileModel, kind opKind) bool {
	if f == nil || (f.names == 0 && !f.open()) {
		return false
	}
	end := f.size / BlockSize
	off := w.rng.Int64N(end)
	n := 1 + w.rng.Int64N(end-off)
	keep := kind == opPunch || w.rng.IntN(2) == 0
	if kind == opZero && !w.fits(f, off, n) {
		return false
	}
	w.push(op{kind: kind, id: f.id, off: off, n: n, keep: keep})
	w.reuse(f)
	return true
}

// genTruncate truncates f down (then lets another file reuse the blocks)
// or up.
func (w *workload) genTruncate(f *fileModel) bool {
	if f == nil || (f.names == 0 && !f.open()) {
		return false
	}
	end := f.size / BlockSize
	if end > 0 && w.rng.IntN(3) > 0 {
		w.push(op{kind: opTruncate, id: f.id, n: w.rng.Int64N(end)})
		w.reuse(f)
		return true
	}
	n := end + 1 + w.rng.Int64N(3)
	if n > maxFileBlocks {
		return false
	}
	return w.push(op{kind: opTruncate, id: f.id, n: n})
}

// genFalloc allocates past f's end with KEEP_SIZE (unwritten blocks past
// EOF, later exposed by a write or truncate beyond them), or anywhere
// without it.
func (w *workload) genFalloc(f *fileModel) bool {
	if f == nil || (f.names == 0 && !f.open()) {
		return false
	}
	end := f.size / BlockSize
	keep := w.rng.IntN(3) > 0
	off := end
	if !keep {
		off = w.rng.Int64N(end + 1)
	}
	n := 1 + w.rng.Int64N(4)
	if !w.fits(f, off, n) {
		return false
	}
	return w.push(op{kind: opFalloc, id: f.id, off: off, n: n, keep: keep})
}

// genUnlink removes a name of f; f usually stays open, its blocks freed
// only when it is closed.
func (w *workload) genUnlink(f *fileModel) bool {
	if f == nil {
		return false
	}
	w.push(op{kind: opUnlink, path: w.nameOf(f.id)})
	w.reuse(f)
	return true
}

// genFIFO makes a FIFO at a free name or, half the time, removes one.
func (w *workload) genFIFO() bool {
	var fifos []string
	for _, p := range slices.Sorted(maps.Keys(w.ns.names)) {
		if w.ns.names[p] == specialFile {
			fifos = append(fifos, p)
		}
	}
	if len(fifos) > 0 && w.rng.IntN(2) == 0 {
		return w.push(op{kind: opUnlink, path: fifos[w.rng.IntN(len(fifos))]})
	}
	free := w.freeNames()
	if len(free) == 0 {
		return false
	}
	return w.push(op{kind: opMknod, path: free[w.rng.IntN(len(free))]})
}

// genRename moves a name of f to a free name or over another file.
func (w *workload) genRename(f *fileModel) bool {
	if f == nil {
		return false
	}
	from := w.nameOf(f.id)
	targets := w.freeNames()
	if w.rng.IntN(2) == 0 {
		targets = nil
		for _, p := range slices.Sorted(maps.Keys(w.ns.names)) {
			if id := w.ns.names[p]; id != 0 && id != f.id {
				targets = append(targets, p)
			}
		}
	}
	if len(targets) == 0 {
		return false
	}
	to := targets[w.rng.IntN(len(targets))]
	w.push(op{kind: opRename, path: from, to: to})
	if w.ns.names[to] != 0 {
		w.reuse(nil)
	}
	return true
}

func (w *workload) genClose(f *fileModel) bool {
	switch {
	case f == nil:
		return false
	case f.dio != nil && (f.buf == nil || w.rng.IntN(2) == 0):
		w.push(op{kind: opClose, id: f.id, direct: true})
	case f.buf != nil:
		w.push(op{kind: opClose, id: f.id})
	default:
		return false
	}
	if f.names == 0 {
		w.reuse(f)
	}
	return true
}

// reuse queues, most of the time, an fsync of the file whose blocks were
// just freed or not, then a write by another file (which allocates the
// lowest free blocks) and an fsync of that one.
func (w *workload) reuse(victim *fileModel) {
	if w.rng.IntN(10) >= 7 {
		return
	}
	if victim != nil && w.rng.IntN(10) < 3 {
		w.push(op{kind: opFsync, id: victim.id})
	}
	var others []*fileModel
	for _, f := range w.liveFiles() {
		if f != victim && f.names > 0 {
			others = append(others, f)
		}
	}
	o := pick(w, others)
	if o == nil {
		return
	}
	end := o.size / BlockSize
	n := 1 + w.rng.Int64N(4)
	if w.rng.IntN(4) == 0 {
		// As much as fits: the free blocks may not be enough without
		// the quarantined ones, and the allocation forces a commit.
		n = min(maxFileBlocks-end, w.budget-w.allocated())
	}
	if n <= 0 || !w.fits(o, end, n) {
		return
	}
	kind := opWrite
	if w.rng.IntN(2) == 0 {
		kind = opDirect
	}
	w.push(op{kind: kind, id: o.id, off: end, n: n})
	if w.rng.IntN(2) == 0 {
		w.push(op{kind: opFsync, id: o.id})
	}
}
