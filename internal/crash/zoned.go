package crash

import (
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// zonedGeometry is the zoned device the zonefs workloads run on: zones of
// 8 blocks with a capacity of 6 (a ZNS-style capacity below the size), the
// first two conventional, so that a workload of a hundred ops fills,
// finishes and resets every sequential zone several times.
var zonedGeometry = blockdev.ZonedOptions{ZoneBlocks: 8, Zones: 6, Conventional: 2, CapacityBlocks: 6}

// zopKind is an operation of a zonefs workload.
type zopKind uint8

const (
	zAppend   zopKind = iota + 1 // O_DIRECT write at a sequential file's end (its write pointer)
	zFsync                       // fsync of a file, sequential or conventional
	zReset                       // truncate of a sequential file to 0: zone reset
	zFinish                      // truncate of a sequential file to its capacity: zone finish
	zCnvWrite                    // buffered write into a conventional file
	zReopen                      // close a file's handle and open it again
	zRemount                     // close every file and the filesystem, reopen the device and mount it again
)

var zopNames = [...]string{zAppend: "append", zFsync: "fsync", zReset: "reset", zFinish: "finish", zCnvWrite: "write", zReopen: "reopen", zRemount: "remount"}

// zop is one operation of a zonefs workload and where it sits in the
// device log: start and end are the indexes of its marks (end -1 while it
// runs).
type zop struct {
	kind       zopKind
	zone       int   // device zone of the file
	off, n     int64 // blocks (zAppend, zCnvWrite)
	start, end int
}

func (o zop) String() string {
	s := fmt.Sprintf("%s zone %d", zopNames[o.kind], o.zone)
	if o.kind == zRemount {
		return "remount"
	}
	if o.kind == zAppend || o.kind == zCnvWrite {
		s += fmt.Sprintf(" blocks %d+%d", o.off, o.n)
	}
	return s
}

// zversion is a sequential file's content after an op: the generation of
// each block below the write pointer, and whether the zone was finished
// (then it is its capacity long, zeros past data). epoch counts resets.
type zversion struct {
	op    int
	data  []int
	full  bool
	epoch int
}

// floor is a version a crash after mark index end can no longer undo: the
// file's content when an fsync of it returned, or a reset that returned
// (a reset persists its write pointer before it returns).
type floor struct {
	end, version int
}

// seqModel is what the workload did to one sequential file.
type seqModel struct {
	versions []zversion // versions[0]: empty
	floors   []floor
}

func (m *seqModel) cur() zversion { return m.versions[len(m.versions)-1] }

// cnvWrite is one buffered write of one block of a conventional file.
type cnvWrite struct{ op int }

// cnvModel is what the workload did to one conventional file: each
// block's writes in op order, and for each fsync that returned the number
// of writes of each block it covered.
type cnvModel struct {
	hist   [][]cnvWrite
	floors []struct {
		end    int
		counts []int
	}
}

// zworkload is a random zonefs workload: one goroutine, whole blocks.
type zworkload struct {
	geo blockdev.ZonedOptions
	// dev is the device under the zoned device, which a remount opens
	// again.
	dev   blockdev.Device
	rng   *rand.Rand
	fsys  *holefs.FS
	mark  func(string) int
	ops   []zop          // ops[0] is a placeholder: op numbers (generations) start at 1
	files []*holefs.File // by zone
	seq   map[int]*seqModel
	cnv   map[int]*cnvModel
	// runtime are failures of the running filesystem: an op that failed.
	runtime []string
	// unmounted: a remount failed, leaving no filesystem to run on.
	unmounted bool
}

func (w *zworkload) name(zone int) string {
	if zone < w.geo.Conventional {
		return fmt.Sprintf("cnv/%d", zone)
	}
	return fmt.Sprintf("seq/%d", zone-w.geo.Conventional)
}

// open opens zone's file: sequential files O_DIRECT, as zonefs requires
// for writes to them; conventional ones buffered.
func (w *zworkload) open(zone int) error {
	flag := os.O_RDWR
	if zone >= w.geo.Conventional {
		flag |= syscall.O_DIRECT
	}
	f, err := w.fsys.OpenFile(w.name(zone), flag, 0)
	w.files[zone] = f
	return err
}

// pick chooses the next op from the models' state.
func (w *zworkload) pick() zop {
	g := w.geo
	if w.rng.IntN(40) == 0 {
		return zop{kind: zRemount}
	}
	zone := w.rng.IntN(g.Zones)
	r := w.rng.IntN(100)
	if zone < g.Conventional {
		switch {
		case r < 70:
			off := w.rng.Int64N(g.ZoneBlocks)
			return zop{kind: zCnvWrite, zone: zone, off: off, n: 1 + w.rng.Int64N(min(3, g.ZoneBlocks-off))}
		case r < 92:
			return zop{kind: zFsync, zone: zone}
		default:
			return zop{kind: zReopen, zone: zone}
		}
	}
	v := w.seq[zone].cur()
	room := g.CapacityBlocks - int64(len(v.data))
	if v.full || room == 0 {
		r = 55 + w.rng.IntN(45) // no append: mostly reset it
	}
	switch {
	case r < 55:
		return zop{kind: zAppend, zone: zone, off: int64(len(v.data)), n: 1 + w.rng.Int64N(min(3, room))}
	case r < 70:
		return zop{kind: zFsync, zone: zone}
	case r < 88:
		return zop{kind: zReset, zone: zone}
	case r < 95:
		return zop{kind: zFinish, zone: zone}
	default:
		return zop{kind: zReopen, zone: zone}
	}
}

// run runs n random ops, then closes every file.
func (w *zworkload) run(n int) {
	for range n {
		if w.do(w.pick()); w.unmounted {
			return
		}
	}
	for zone, f := range w.files {
		if err := f.Close(); err != nil {
			w.runtime = append(w.runtime, fmt.Sprintf("close %s: %v", w.name(zone), err))
		}
	}
}

// do runs o between its marks and applies it to the models.
func (w *zworkload) do(o zop) {
	gen := len(w.ops)
	o.start = w.mark(fmt.Sprintf("op %d start: %v", gen, o))
	o.end = -1
	w.ops = append(w.ops, o)
	f, g := w.files[o.zone], w.geo
	var err error
	switch o.kind {
	case zRemount:
		err = w.remount()
		w.unmounted = err != nil
	case zAppend, zCnvWrite:
		_, err = f.WriteAt(signed(uint64(o.zone)+1, o.off, o.n, gen), o.off*BlockSize)
	case zFsync:
		err = f.Sync()
	case zReset:
		err = f.Truncate(0)
	case zFinish:
		err = f.Truncate(g.CapacityBlocks * BlockSize)
	case zReopen:
		if err = f.Close(); err == nil {
			err = w.open(o.zone)
		}
	}
	end := w.mark(fmt.Sprintf("op %d end", gen))
	w.ops[gen].end = end
	if err != nil {
		w.runtime = append(w.runtime, fmt.Sprintf("op %d (%v): %v", gen, o, err))
		return
	}
	if o.kind == zRemount {
		// Unmounting flushed everything: every file is as durable as an
		// fsync would have made it.
		for zone := range g.Zones {
			w.apply(zop{kind: zFsync, zone: zone}, gen, end)
		}
		return
	}
	w.apply(o, gen, end)
}

// apply applies op gen, o, which ended at mark end, to the models.
func (w *zworkload) apply(o zop, gen, end int) {
	g := w.geo
	if o.zone < g.Conventional {
		m := w.cnv[o.zone]
		switch o.kind {
		case zCnvWrite:
			for b := o.off; b < o.off+o.n; b++ {
				m.hist[b] = append(m.hist[b], cnvWrite{op: gen})
			}
		case zFsync:
			counts := make([]int, len(m.hist))
			for b, h := range m.hist {
				counts[b] = len(h)
			}
			m.floors = append(m.floors, struct {
				end    int
				counts []int
			}{end, counts})
		}
		return
	}
	m := w.seq[o.zone]
	v := m.cur()
	next := zversion{op: gen, data: append([]int(nil), v.data...), full: v.full, epoch: v.epoch}
	switch o.kind {
	case zAppend:
		for range o.n {
			next.data = append(next.data, gen)
		}
		next.full = int64(len(next.data)) == g.CapacityBlocks
	case zReset:
		next = zversion{op: gen, epoch: v.epoch + 1}
	case zFinish:
		next.full = true
	case zFsync:
		m.floors = append(m.floors, floor{end: end, version: len(m.versions) - 1})
		return
	default:
		return
	}
	m.versions = append(m.versions, next)
	if o.kind == zReset {
		m.floors = append(m.floors, floor{end: end, version: len(m.versions) - 1})
	}
}

// remount closes every file and the filesystem, which flushes and closes
// the zoned device, opens the device again from its zone state (as after
// a power cycle) and mounts it.
func (w *zworkload) remount() error {
	for zone, f := range w.files {
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", w.name(zone), err)
		}
	}
	if err := w.fsys.Close(); err != nil {
		return err
	}
	z, err := blockdev.OpenZonedOn(w.dev, w.geo)
	if err != nil {
		return err
	}
	if w.fsys, err = holefs.Open("", zonedOptions(z)); err != nil {
		return err
	}
	for zone := range w.files {
		if err := w.open(zone); err != nil {
			return err
		}
	}
	return nil
}

// zonedOptions mounts z as the workload does.
func zonedOptions(z *blockdev.Zoned) holefs.Options {
	return holefs.Options{Backend: holefs.BackendZonefs, Device: z, CacheBytes: 1 << 20}
}

// keepOpen is the device under a recorded zoned device: a remount closes
// the zoned device, not the recording.
type keepOpen struct{ blockdev.Device }

func (keepOpen) Close() error { return nil }

// zrecording is a recorded zonefs workload.
type zrecording struct {
	seed uint64
	geo  blockdev.ZonedOptions
	log  []blockdev.Entry
	// first is the log index after the device was made and flushed: no
	// crash point comes before it (mkfs completed).
	first int
	w     *zworkload
}

// recordZoned runs a zonefs workload of ops ops from seed on a zoned
// device made on a recorded memory device (blockdev.NewZonedOn: data and
// zone state in one log). wrap, if set, goes between the zoned device and
// the recorder: tests use it to break the device's ordering.
func recordZoned(seed uint64, ops int, wrap func(blockdev.Device) blockdev.Device) (*zrecording, error) {
	geo := zonedGeometry
	rec := blockdev.NewRecorder(blockdev.NewMemory(blockdev.ZonedOnBlocks(geo)))
	var dev blockdev.Device = keepOpen{rec}
	if wrap != nil {
		dev = keepOpen{wrap(rec)}
	}
	z, err := blockdev.NewZonedOn(dev, geo)
	if err != nil {
		return nil, err
	}
	r := &zrecording{seed: seed, geo: geo, first: rec.Len()}
	fsys, err := holefs.Open("", zonedOptions(z))
	if err != nil {
		return nil, err
	}
	w := &zworkload{geo: geo, dev: dev, rng: rand.New(rand.NewPCG(seed, 0x7a6f6e6564)), fsys: fsys, mark: rec.Mark,
		ops: []zop{{}}, files: make([]*holefs.File, geo.Zones), seq: map[int]*seqModel{}, cnv: map[int]*cnvModel{}}
	for zone := range geo.Zones {
		if zone < geo.Conventional {
			w.cnv[zone] = &cnvModel{hist: make([][]cnvWrite, geo.ZoneBlocks)}
		} else {
			w.seq[zone] = &seqModel{versions: []zversion{{}}}
		}
		if err := w.open(zone); err != nil {
			fsys.Close()
			return nil, err
		}
	}
	w.run(ops)
	if w.unmounted {
		r.w, r.log = w, rec.Log()
		return r, nil
	}
	if err := w.fsys.Close(); err != nil {
		w.runtime = append(w.runtime, fmt.Sprintf("close the filesystem: %v", err))
	}
	r.w, r.log = w, rec.Log()
	return r, nil
}
