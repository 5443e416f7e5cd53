package torture

import (
	"fmt"
	"syscall"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// The zonefs run. Each victim file is a sequential zone (seq/N) whose
// capacity is the nominal file size, so that the setup's write fills it.
// Its writers are direct appends at the write pointer (the direct worker's
// writes), its removers zone resets (truncate to 0) and finishes
// (truncate to the capacity); the fill paths are those zonefs has:
// buffered reads, readahead, fadvise and madvise, and faults on read-only
// views. Buffered writes, writable views, copies into a zone and the
// neighbour's new files are refused by zonefs and not run.

// zoned reports a zonefs run.
func (t *torture) zoned() bool { return t.cfg.Backend == holefs.BackendZonefs }

// zonedGeometry is the zoned device of a run: a conventional zone (zonefs
// keeps one for its superblock), then one sequential zone per file, of
// the nominal file size.
func zonedGeometry(cfg Config) blockdev.ZonedOptions {
	return blockdev.ZonedOptions{ZoneBlocks: int64(cfg.FileBlocks), Zones: cfg.Files + 1, Conventional: 1}
}

// zonedFlags returns the open flags of a worker kind on a zonefs run, or
// for the kinds zonefs refuses the op to count as refused.
func zonedFlags(kind string, flags int) (int, string) {
	switch kind {
	case WorkWrite, WorkMapWrite, WorkCopy:
		return 0, kind
	case WorkNeighbour:
		return 0, "nb-create"
	}
	return flags, ""
}

// appendZone appends up to 8 signed blocks to file i at its write
// pointer, its size. A reset or finish between the size's lookup and the
// write moves the write pointer: zonefs refuses the write (EINVAL, or
// EFBIG once full) before it writes anything.
func (w *worker) appendZone(i int) {
	v := w.t.files[i]
	fi, err := w.t.lib.Stat(v.name)
	if err != nil {
		w.t.unexpected(w.name, "stat "+v.name, err)
		return
	}
	fb := int64(w.t.cfg.FileBlocks)
	pos := fi.Size() / BlockSize
	if pos >= fb {
		return // full: a remover resets it
	}
	n := min(int64(1+w.r.IntN(8)), fb-pos)
	fm := v.fm
	o := fm.beginWrite("append", w.name, pos, n, true)
	signRange(w.buf, fm.id, pos, n, o.start)
	c, err := w.handles[i].WriteAt(w.buf[:n*BlockSize], pos*BlockSize)
	w.op("append")
	switch {
	case err == nil:
		fm.end(o, c/BlockSize, fateVoid, "")
	case isErr(err, syscall.EINVAL, syscall.EFBIG):
		fm.end(o, 0, fateVoid, errString(err))
	default:
		fm.end(o, c/BlockSize, fateUncertain, errString(err))
		w.t.unexpected(w.name, fmt.Sprintf("append to %s at block %d", v.name, pos), err)
	}
}

// zoneRemove resets a zone (truncate to 0), or finishes it (truncate to
// the capacity: the blocks never written read as zeros).
func (w *worker) zoneRemove() {
	// Paced, so that the appenders fill the zones between resets and the
	// fills have data to race with.
	time.Sleep(50 * time.Microsecond)
	i := w.pick()
	v := w.t.files[i]
	fm := v.fm
	fb := int64(w.t.cfg.FileBlocks)
	mb := int64(len(fm.blocks))
	name, size, o := "reset", int64(0), (*op)(nil)
	if w.r.IntN(4) == 0 {
		name, size = "finish", fb
		o = fm.beginRemove(name, w.name, fmt.Sprintf("to %d blocks", fb), fb, mb-fb)
	} else {
		o = fm.beginRemove(name, w.name, "to 0 blocks", 0, mb)
	}
	v.gate.Lock()
	err := w.handles[i].Truncate(size * BlockSize)
	v.gate.Unlock()
	w.op(name)
	if err != nil {
		fm.end(o, 0, fateUncertain, errString(err))
		w.t.unexpected(w.name, name+" "+v.name, err)
		return
	}
	fm.end(o, -1, fateVoid, "")
}
