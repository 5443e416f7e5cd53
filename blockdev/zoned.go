package blockdev

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// ZoneType is the type of a zone of a zoned device.
type ZoneType uint8

// The zone types, as Linux's BLK_ZONE_TYPE_*.
const (
	// ZoneConventional: random writes anywhere, no write pointer.
	ZoneConventional ZoneType = iota + 1
	// ZoneSequential: sequential write required (SMR's and ZNS's zones):
	// writes only at the write pointer.
	ZoneSequential
)

func (t ZoneType) String() string {
	switch t {
	case ZoneConventional:
		return "conventional"
	case ZoneSequential:
		return "sequential"
	}
	return fmt.Sprintf("ZoneType(%d)", uint8(t))
}

// ZoneCond is the condition of a zone, as Linux's BLK_ZONE_COND_*.
type ZoneCond uint8

// The zone conditions.
const (
	// CondNotWP: a conventional zone, which has no write pointer.
	CondNotWP ZoneCond = iota
	// CondEmpty: the write pointer is at the zone's start.
	CondEmpty
	// CondImplicitOpen: opened by a write; the device may close it to
	// open another.
	CondImplicitOpen
	// CondExplicitOpen: opened by OpenZone; stays open until closed.
	CondExplicitOpen
	// CondClosed: partly written, not open; still counts as active.
	CondClosed
	// CondFull: written to capacity or finished; no write accepted.
	CondFull
	// CondReadOnly: a failing zone that can still be read.
	CondReadOnly
	// CondOffline: a dead zone: neither read nor written.
	CondOffline
)

var condNames = [...]string{"not-wp", "empty", "implicit-open", "explicit-open", "closed", "full", "read-only", "offline"}

func (c ZoneCond) String() string {
	if int(c) < len(condNames) {
		return condNames[c]
	}
	return fmt.Sprintf("ZoneCond(%d)", uint8(c))
}

// open reports whether a zone of condition c holds an open resource, and
// active whether it holds an active one (ZNS: open zones and closed ones).
func (c ZoneCond) open() bool   { return c == CondImplicitOpen || c == CondExplicitOpen }
func (c ZoneCond) active() bool { return c.open() || c == CondClosed }

// Zone is one zone as ReportZones reports it. Positions are device blocks,
// as Linux's struct blk_zone gives sectors: WP is absolute.
type Zone struct {
	Start    int64 // first block of the zone
	Len      int64 // zone size in blocks
	Capacity int64 // blocks that can be written, <= Len (ZNS zone capacity)
	WP       int64 // write pointer; Start+Capacity once full; meaningless when conventional, read-only or offline
	Type     ZoneType
	Cond     ZoneCond
}

// Written returns the blocks written from the zone's start: the file size
// of its zonefs file.
func (z Zone) Written() int64 {
	switch z.Cond {
	case CondNotWP:
		return z.Capacity
	case CondFull:
		return z.Capacity
	}
	return z.WP - z.Start
}

// ZonedOptions is the geometry and limits of a zoned device.
type ZonedOptions struct {
	// ZoneBlocks is the size of every zone in blocks (> 0).
	ZoneBlocks int64
	// Zones is the number of zones (> 0).
	Zones int
	// Conventional is how many of the first zones are conventional; the
	// rest are sequential write required (as SMR disks put their
	// conventional zones first).
	Conventional int
	// CapacityBlocks is the writable part of each zone, 0 for all of it
	// (ZNS zones may be smaller than their size).
	CapacityBlocks int64
	// MaxOpen and MaxActive limit the zones open (implicitly or
	// explicitly) and active (open or closed) at once; 0: no limit.
	MaxOpen, MaxActive int
}

func (o *ZonedOptions) check() error {
	switch {
	case o.ZoneBlocks <= 0 || o.Zones <= 0:
		return fmt.Errorf("blockdev: zoned device of %d zones of %d blocks: both must be positive: %w", o.Zones, o.ZoneBlocks, syscall.EINVAL)
	case o.Conventional < 0 || o.Conventional > o.Zones:
		return fmt.Errorf("blockdev: zoned device: %d conventional zones of %d: %w", o.Conventional, o.Zones, syscall.EINVAL)
	case o.CapacityBlocks < 0 || o.CapacityBlocks > o.ZoneBlocks:
		return fmt.Errorf("blockdev: zoned device: zone capacity of %d blocks not within the zone size of %d: %w", o.CapacityBlocks, o.ZoneBlocks, syscall.EINVAL)
	case o.MaxOpen < 0 || o.MaxActive < 0 || (o.MaxActive > 0 && o.MaxOpen > o.MaxActive):
		return fmt.Errorf("blockdev: zoned device: max open zones %d, max active zones %d: %w", o.MaxOpen, o.MaxActive, syscall.EINVAL)
	}
	if _, ok := byteSize(o.ZoneBlocks * int64(o.Zones)); !ok || o.ZoneBlocks*int64(o.Zones)/int64(o.Zones) != o.ZoneBlocks {
		return fmt.Errorf("blockdev: zoned device of %d zones of %d blocks is too large: %w", o.Zones, o.ZoneBlocks, syscall.EINVAL)
	}
	if o.CapacityBlocks == 0 {
		o.CapacityBlocks = o.ZoneBlocks
	}
	return nil
}

// Zoned is a zoned block device: fixed-size zones, conventional or
// sequential write required, with a write pointer each, as an SMR disk or
// a ZNS SSD. Errors are those Linux's block layer turns the device's
// status into (block/blk-core.c, blk_errors[]):
//   - a write to a sequential zone anywhere but its write pointer, past
//     its capacity, across its end, or to a full, read-only or offline
//     zone, and a read of an offline zone: EIO (BLK_STS_IOERR, what an
//     unaligned write's status becomes);
//   - opening a zone (explicitly, or implicitly by a write) beyond the
//     max-open limit when no implicitly open zone can be closed to make
//     room: ETOOMANYREFS (BLK_STS_ZONE_OPEN_RESOURCE);
//   - activating one beyond the max-active limit: EOVERFLOW
//     (BLK_STS_ZONE_ACTIVE_RESOURCE);
//   - a zone command on a conventional, read-only or offline zone: EIO.
//
// Reads past a zone's write pointer return zeros: a reset discards what
// the zone held. The file-backed form (CreateZonedFile, OpenZonedFile)
// keeps every zone's write pointer and condition in a state file next to
// the data, so an image survives reopen and a crash leaves the state the
// device would report, as a disk keeps its write pointers. Its crash
// model is a drive with a volatile write cache: unflushed writes may be
// lost, and the write pointer it reports after the crash never stands
// over lost data, because a write pointer reaches the state file only
// after the data below it was flushed (see persisted, ResetZone,
// FinishZone); internal/crash enumerates its crash states.
type Zoned struct {
	data  Device
	state zoneStore // nil for a memory-backed device
	opts  ZonedOptions

	// wmu[i] serializes the writers and the zone commands of zone i, so
	// that its write pointer is checked and moved around the data write
	// as one step. Taken before mu.
	wmu []sync.Mutex

	mu    sync.Mutex // the zone table and its counts; above the state file's mu
	zones []Zone     // +checklocks:mu
	// durable[i] is the write pointer of zone i that the data flushed so
	// far backs: the highest the zone state may record (persisted), so
	// that a recovered write pointer never has unflushed data below it.
	durable []int64 // +checklocks:mu
	// gen[i] counts zone i's resets and finishes, which move durable[i]
	// themselves: a Flush applies what it saw only if none ran meanwhile.
	gen []uint64 // +checklocks:mu
	// stored[i] is the record last put in the zone state, not rewritten
	// while an append leaves it as it is.
	stored []Zone // +checklocks:mu
	open   int    // zones open; +checklocks:mu
	active int    // zones active; +checklocks:mu
	closed bool   // +checklocks:mu
}

// NewZoned returns a memory-backed zoned device, every sequential zone
// empty.
func NewZoned(opts ZonedOptions) (*Zoned, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	return newZoned(NewMemory(opts.ZoneBlocks*int64(opts.Zones)), nil, opts, nil), nil
}

// newZoned builds the device on data; zones, if not nil, is the state the
// device had (the file-backed form's).
func newZoned(data Device, st zoneStore, opts ZonedOptions, zones []Zone) *Zoned {
	z := &Zoned{data: data, state: st, opts: opts, wmu: make([]sync.Mutex, opts.Zones)}
	if zones == nil {
		zones = make([]Zone, opts.Zones)
		for i := range zones {
			zones[i] = Zone{Start: int64(i) * opts.ZoneBlocks, Len: opts.ZoneBlocks, Capacity: opts.CapacityBlocks,
				Type: ZoneSequential, Cond: CondEmpty}
			zones[i].WP = zones[i].Start
			if i < opts.Conventional {
				zones[i].Type, zones[i].Cond, zones[i].Capacity = ZoneConventional, CondNotWP, opts.ZoneBlocks
			}
		}
	}
	for _, zn := range zones {
		if zn.Cond.open() {
			z.open++
		}
		if zn.Cond.active() {
			z.active++
		}
	}
	z.zones = zones
	z.durable, z.gen, z.stored = make([]int64, len(zones)), make([]uint64, len(zones)), append([]Zone(nil), zones...)
	for i, zn := range zones {
		z.durable[i] = zn.WP
	}
	return z
}

// Options returns the device's geometry and limits.
func (z *Zoned) Options() ZonedOptions { return z.opts }

// NumZones returns the number of zones.
func (z *Zoned) NumZones() int { return z.opts.Zones }

// NumBlocks returns the device size in blocks.
func (z *Zoned) NumBlocks() int64 { return z.opts.ZoneBlocks * int64(z.opts.Zones) }

// ReportZones returns the zones [first, first+n), clipped to the device
// (Linux's blkdev_report_zones).
func (z *Zoned) ReportZones(first, n int) ([]Zone, error) {
	if first < 0 || n < 0 || first > z.opts.Zones {
		return nil, fmt.Errorf("blockdev: report of %d zones from zone %d of %d: %w", n, first, z.opts.Zones, syscall.EINVAL)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closed {
		return nil, errClosed("report zones")
	}
	end := first + min(n, z.opts.Zones-first)
	return append([]Zone(nil), z.zones[first:end]...), nil
}

// Report returns zone i.
func (z *Zoned) Report(i int) (Zone, error) {
	zs, err := z.ReportZones(i, 1)
	if err != nil {
		return Zone{}, err
	}
	if len(zs) == 0 {
		return Zone{}, fmt.Errorf("blockdev: report of zone %d of %d: %w", i, z.opts.Zones, syscall.EINVAL)
	}
	return zs[0], nil
}

// ReadBlocks reads len(p)/BlockSize blocks starting at block into p, in
// as many zones as it spans; blocks past a write pointer read as zeros.
func (z *Zoned) ReadBlocks(p []byte, block int64) error {
	n, err := checkIO("read", p, block, z.NumBlocks())
	if err != nil {
		return err
	}
	for done := int64(0); done < n; {
		i := int((block + done) / z.opts.ZoneBlocks)
		z.mu.Lock()
		zn, closed := z.zones[i], z.closed
		z.mu.Unlock()
		if closed {
			return errClosed("read")
		}
		cnt := min(n-done, zn.Start+zn.Len-(block+done))
		buf := p[done*BlockSize : (done+cnt)*BlockSize]
		if zn.Cond == CondOffline {
			return fmt.Errorf("blockdev: read at block %d: zone %d is offline: %w", block+done, i, syscall.EIO)
		}
		if err := z.data.ReadBlocks(buf, block+done); err != nil {
			return err
		}
		if zn.Type == ZoneSequential {
			// What a reset discarded stays unreadable even if the data
			// store still holds it (a reset interrupted by a crash).
			if from := zn.WP - (block + done); from < cnt {
				clear(buf[max(from, 0)*BlockSize:])
			}
		}
		done += cnt
	}
	return nil
}

// WriteBlocks writes p to len(p)/BlockSize blocks starting at block: in a
// conventional zone anywhere, in a sequential zone only at its write
// pointer and within its capacity (EIO otherwise), which the write moves.
func (z *Zoned) WriteBlocks(p []byte, block int64) error {
	n, err := checkIO("write", p, block, z.NumBlocks())
	if err != nil {
		return err
	}
	for done := int64(0); done < n; {
		i := int((block + done) / z.opts.ZoneBlocks)
		start := int64(i) * z.opts.ZoneBlocks
		cnt := min(n-done, start+z.opts.ZoneBlocks-(block+done))
		if err := z.writeZone(i, p[done*BlockSize:(done+cnt)*BlockSize], block+done); err != nil {
			return err
		}
		done += cnt
	}
	return nil
}

// writeZone writes p at block, all inside zone i.
func (z *Zoned) writeZone(i int, p []byte, block int64) error {
	n := int64(len(p) / BlockSize)
	z.wmu[i].Lock()
	defer z.wmu[i].Unlock()
	z.mu.Lock()
	if z.closed {
		z.mu.Unlock()
		return errClosed("write")
	}
	zn := z.zones[i]
	var err error
	switch {
	case zn.Cond == CondOffline || zn.Cond == CondReadOnly:
		err = fmt.Errorf("blockdev: write at block %d: zone %d is %s: %w", block, i, zn.Cond, syscall.EIO)
	case zn.Type == ZoneConventional:
		z.mu.Unlock()
		return z.data.WriteBlocks(p, block)
	case zn.Cond == CondFull:
		err = fmt.Errorf("blockdev: write at block %d: zone %d is %s: %w", block, i, zn.Cond, syscall.EIO)
	case block != zn.WP:
		err = fmt.Errorf("blockdev: write at block %d: zone %d's write pointer is at block %d (unaligned write): %w", block, i, zn.WP, syscall.EIO)
	case block+n > zn.Start+zn.Capacity:
		err = fmt.Errorf("blockdev: write of %d blocks at block %d: past the capacity of zone %d (%d blocks): %w", n, block, i, zn.Capacity, syscall.EIO)
	case zn.Cond == CondEmpty || zn.Cond == CondClosed:
		err = z.openLocked(i, CondImplicitOpen)
	}
	z.mu.Unlock()
	if err != nil {
		return err
	}
	if err := z.data.WriteBlocks(p, block); err != nil {
		// The device wrote some of it, or none: as on a disk, the write
		// pointer is where report-zones says, here unmoved.
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	zn = z.zones[i]
	zn.WP = block + n
	if zn.WP == zn.Start+zn.Capacity {
		z.release(zn.Cond)
		zn.Cond = CondFull
	}
	return z.setLocked(i, zn)
}

// openLocked opens zone i as cond (implicitly by a write, or explicitly),
// taking an active and an open resource as the zone needs; an implicitly
// open zone is closed to make room, as a ZNS drive does.
func (z *Zoned) openLocked(i int, cond ZoneCond) error {
	zn := z.zones[i]
	if zn.Cond.open() {
		if zn.Cond != cond && cond == CondExplicitOpen {
			zn.Cond = cond
			return z.setLocked(i, zn)
		}
		return nil
	}
	if !zn.Cond.active() && z.opts.MaxActive > 0 && z.active >= z.opts.MaxActive {
		return fmt.Errorf("blockdev: open zone %d: %d zones active, the device's limit: %w", i, z.active, syscall.EOVERFLOW)
	}
	if z.opts.MaxOpen > 0 && z.open >= z.opts.MaxOpen {
		// The victim is an implicitly open zone with no write in flight
		// (its wmu free): closed under a write that has not moved its
		// write pointer yet, it would go back to empty and the write would
		// then leave an empty zone with data. Only a try: the caller holds
		// mu, which ranks below every wmu.
		victim := -1
		for j, o := range z.zones {
			if o.Cond == CondImplicitOpen && z.wmu[j].TryLock() {
				victim = j
				break
			}
		}
		if victim < 0 {
			return fmt.Errorf("blockdev: open zone %d: %d zones open, the device's limit, none of them closable: %w", i, z.open, syscall.ETOOMANYREFS)
		}
		err := z.closeLocked(victim)
		z.wmu[victim].Unlock()
		if err != nil {
			return err
		}
	}
	if !zn.Cond.active() {
		z.active++
	}
	z.open++
	zn.Cond = cond
	return z.setLocked(i, zn)
}

// closeLocked closes open zone i: closed, or empty if nothing is written.
func (z *Zoned) closeLocked(i int) error {
	zn := z.zones[i]
	if !zn.Cond.open() {
		return nil
	}
	z.open--
	zn.Cond = CondClosed
	if zn.WP == zn.Start {
		z.active--
		zn.Cond = CondEmpty
	}
	return z.setLocked(i, zn)
}

// release gives back the resources a zone leaving condition c held.
func (z *Zoned) release(c ZoneCond) {
	if c.open() {
		z.open--
	}
	if c.active() {
		z.active--
	}
}

// setLocked records zone i's new state, and in the zone state what of it
// the flushed data backs (persisted).
func (z *Zoned) setLocked(i int, zn Zone) error {
	z.zones[i] = zn
	return z.storeLocked(i)
}

// storeLocked puts zone i's persisted record in the zone state if it
// changed.
func (z *Zoned) storeLocked(i int) error {
	if z.state == nil {
		return nil
	}
	rec := z.persisted(i)
	if rec == z.stored[i] {
		return nil
	}
	if err := z.state.put(i, rec); err != nil {
		return err
	}
	z.stored[i] = rec
	return nil
}

// persisted returns the record of zone i that the zone state may hold: the
// zone, with its write pointer no further than the flushed data backs.
// Appends not yet flushed move the write pointer in memory only; Flush
// records them after flushing their data. So a crash, which may keep any
// of the unflushed writes of either file, never leaves a recorded write
// pointer over data that was lost: the model of a zoned drive whose
// volatile cache loses unflushed writes but whose reported write pointer
// always has the data below it (what zonefs relies on when it sizes a
// file from the write pointer at mount).
func (z *Zoned) persisted(i int) Zone {
	zn := z.zones[i]
	if zn.Type != ZoneSequential || zn.WP <= z.durable[i] {
		return zn
	}
	zn.WP = z.durable[i]
	switch {
	case zn.WP == zn.Start && (zn.Cond == CondFull || zn.Cond == CondClosed):
		zn.Cond = CondEmpty
	case zn.Cond == CondFull:
		zn.Cond = CondClosed
	}
	return zn
}

// zoneCommand checks that zone i can take a zone command and runs fn with
// its writers excluded (wmu[i]) but not the table locked: fn takes mu to
// change the zone, and may flush or discard without it. The zone's type
// and condition class cannot change meanwhile (SetZoneCondition takes
// wmu[i] too); an open zone may still be closed to make room for another.
func (z *Zoned) zoneCommand(op string, i int, fn func() error) error {
	if i < 0 || i >= z.opts.Zones {
		return fmt.Errorf("blockdev: %s zone %d of %d: %w", op, i, z.opts.Zones, syscall.EINVAL)
	}
	z.wmu[i].Lock()
	defer z.wmu[i].Unlock()
	z.mu.Lock()
	closed, zn := z.closed, z.zones[i]
	z.mu.Unlock()
	if closed {
		return errClosed(op + " zone")
	}
	switch zn.Cond {
	case CondNotWP, CondReadOnly, CondOffline:
		return fmt.Errorf("blockdev: %s zone %d: zone is %s: %w", op, i, zn.Cond, syscall.EIO)
	}
	return fn()
}

// locked runs fn with the table locked, unless the device is closed.
func (z *Zoned) locked(op string, fn func() error) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closed {
		return errClosed(op + " zone")
	}
	return fn()
}

// ResetZone rewinds zone i's write pointer to its start and discards its
// data (REQ_OP_ZONE_RESET): it reads as zeros after.
func (z *Zoned) ResetZone(i int) error {
	return z.zoneCommand("reset", i, func() error {
		// The write pointer first, durably, then the discard: a crash
		// between the two leaves an empty zone over old data, which reads
		// cannot reach (they stop at the write pointer), writes overwrite
		// and a finish discards before it exposes. The reverse order, or
		// the two left to the next flush, could leave the old write
		// pointer over zeros: a file neither before nor after.
		var start, old int64
		err := z.locked("reset", func() error {
			zn := z.zones[i]
			start, old = zn.Start, zn.WP
			z.release(zn.Cond)
			zn.WP, zn.Cond = zn.Start, CondEmpty
			z.durable[i] = zn.Start
			z.gen[i]++
			return z.setLocked(i, zn)
		})
		if err != nil {
			return err
		}
		if z.state != nil {
			if err := z.state.flush(); err != nil {
				return err
			}
		}
		if old > start {
			return discard(z.data, start, old-start)
		}
		return nil
	})
}

// FinishZone moves zone i's write pointer to its capacity: full, no more
// writes (REQ_OP_ZONE_FINISH). The blocks never written read as zeros:
// they are discarded first, whatever an interrupted reset or write left
// past the write pointer, and, with a zone state to record it, flushed
// with the appends below the write pointer before the zone is recorded
// full (a full zone's data must all be there after a crash).
func (z *Zoned) FinishZone(i int) error {
	return z.zoneCommand("finish", i, func() error {
		z.mu.Lock()
		zn := z.zones[i]
		z.mu.Unlock()
		end := zn.Start + zn.Capacity
		if zn.WP < end {
			if err := discard(z.data, zn.WP, end-zn.WP); err != nil {
				return err
			}
		}
		if z.state != nil {
			if err := z.data.Flush(); err != nil {
				return err
			}
		}
		return z.locked("finish", func() error {
			zn := z.zones[i]
			z.release(zn.Cond)
			zn.WP, zn.Cond = end, CondFull
			z.durable[i] = end
			z.gen[i]++
			return z.setLocked(i, zn)
		})
	})
}

// OpenZone opens zone i explicitly (REQ_OP_ZONE_OPEN); a full zone is EIO.
func (z *Zoned) OpenZone(i int) error {
	return z.zoneCommand("open", i, func() error {
		return z.locked("open", func() error {
			if z.zones[i].Cond == CondFull {
				return fmt.Errorf("blockdev: open zone %d: zone is full: %w", i, syscall.EIO)
			}
			return z.openLocked(i, CondExplicitOpen)
		})
	})
}

// CloseZone closes open zone i (REQ_OP_ZONE_CLOSE); other zones are left
// as they are.
func (z *Zoned) CloseZone(i int) error {
	return z.zoneCommand("close", i, func() error {
		return z.locked("close", func() error { return z.closeLocked(i) })
	})
}

// SetZoneCondition forces zone i into cond, CondReadOnly or CondOffline,
// as a failing drive does: fault injection for tests. Its write pointer is
// kept (and meaningless, as the drive reports it).
func (z *Zoned) SetZoneCondition(i int, cond ZoneCond) error {
	if i < 0 || i >= z.opts.Zones || (cond != CondReadOnly && cond != CondOffline) {
		return fmt.Errorf("blockdev: set zone %d of %d to %s: only read-only and offline can be injected: %w", i, z.opts.Zones, cond, syscall.EINVAL)
	}
	z.wmu[i].Lock()
	defer z.wmu[i].Unlock()
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closed {
		return errClosed("set zone condition")
	}
	zn := z.zones[i]
	z.release(zn.Cond)
	zn.Cond = cond
	return z.setLocked(i, zn)
}

// Flush makes every completed write durable, the zone state included:
// the data first, then the write pointers it backs are recorded and the
// zone state flushed.
func (z *Zoned) Flush() error {
	if z.state == nil {
		return z.data.Flush()
	}
	z.mu.Lock()
	wps, gens := make([]int64, len(z.zones)), append([]uint64(nil), z.gen...)
	for i, zn := range z.zones {
		wps[i] = zn.WP
	}
	z.mu.Unlock()
	if err := z.data.Flush(); err != nil {
		return err
	}
	err := z.locked("flush", func() error {
		for i, wp := range wps {
			if z.gen[i] != gens[i] || wp <= z.durable[i] {
				continue
			}
			z.durable[i] = wp
			if err := z.storeLocked(i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return z.state.flush()
}

// Close releases the device; further I/O fails with an error wrapping
// syscall.EBADF. A device with a zone state is flushed first: closing it
// is no power loss, and the write pointers of the appends it took, which
// only a flush records (persisted), must survive a reopen as a drive's
// do. A memory-backed device is not flushed.
func (z *Zoned) Close() error {
	z.mu.Lock()
	closed := z.closed
	z.mu.Unlock()
	var err error
	if z.state != nil && !closed {
		err = z.Flush()
	}
	z.mu.Lock()
	if z.closed {
		z.mu.Unlock()
		return errClosedTwice()
	}
	z.closed = true
	z.mu.Unlock()
	if derr := z.data.Close(); err == nil {
		err = derr
	}
	if z.state != nil {
		if serr := z.state.close(); err == nil {
			err = serr
		}
	}
	return err
}

// discard makes [block, block+n) of d read as zeros: a File punches them
// out where its filesystem can, a Memory frees them, any other device is
// written with zeros.
func discard(d Device, block, n int64) error {
	if f, ok := d.(interface{ Discard(block, n int64) error }); ok {
		if err := f.Discard(block, n); !errors.Is(err, syscall.EOPNOTSUPP) {
			return err
		}
	}
	zero := make([]byte, min(n, 256)*BlockSize)
	for n > 0 {
		c := min(n, int64(len(zero)/BlockSize))
		if err := d.WriteBlocks(zero[:c*BlockSize], block); err != nil {
			return err
		}
		block, n = block+c, n-c
	}
	return nil
}
