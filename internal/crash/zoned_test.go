package crash

import (
	"context"
	"sync"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// TestZonedCrashStates records random zonefs workloads (appends, fsyncs,
// resets, finishes, conventional buffered writes, reopens) on a zoned
// device and checks every crash state of them: none may break the model.
func TestZonedCrashStates(t *testing.T) {
	states := 800 // under -race in CI time; -crash.states for more
	if *flagStates > 0 {
		states = *flagStates
	}
	rep, err := Run(context.Background(), Config{Backend: holefs.BackendZonefs, Seed: *flagSeed, Ops: 100,
		States: states, Subsets: 4, Dir: scratch(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d workloads, %d ops, %d flushes, %d block writes: %d crash points, %d crash states checked in %v",
		rep.Workloads, rep.Ops, rep.Flushes, rep.Writes, rep.Points, rep.States, rep.Elapsed)
	for _, v := range rep.Examples {
		t.Error(v)
	}
	if rep.Violations > len(rep.Examples) {
		t.Errorf("and %d more violations (%s)", rep.Violations-len(rep.Examples), kinds(rep.Kinds))
	}
	if rep.States < states || rep.Flushes < 40 {
		t.Errorf("only %d crash states of %d flushes: the workload does too little", rep.States, rep.Flushes)
	}
}

// TestZonedWorkload: a zonefs workload runs every kind of op without
// error, and its sequential files get filled and finished, not only
// appended to.
func TestZonedWorkload(t *testing.T) {
	r, err := recordZoned(1, 200, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.w.runtime {
		t.Error(p)
	}
	count := map[zopKind]int{}
	for _, o := range r.w.ops[1:] {
		count[o.kind]++
	}
	full := 0
	for _, m := range r.w.seq {
		for _, v := range m.versions {
			if v.full {
				full++
			}
		}
	}
	for k := zAppend; k <= zRemount; k++ {
		if count[k] == 0 {
			t.Errorf("no %s in 200 ops", zopNames[k])
		}
	}
	if full < 4 {
		t.Errorf("sequential files full only %d times in 200 ops", full)
	}
	t.Logf("ops %v, %d full versions", count, full)
}

// zoneRegion splits a NewZonedOn device's blocks: below first, the
// zones' data; from first, the zone state.
var zoneRegion = zonedGeometry.ZoneBlocks * int64(zonedGeometry.Zones)

// reorder is a device that holds back the writes of one region (data or
// zone state) until the next flush and issues them after it, as a device
// that persisted the other region's writes first would: the broken
// orderings the checker must catch. Reads see the held writes.
type reorder struct {
	blockdev.Device
	holdState bool // hold the zone state's writes, else the data's
	mu        sync.Mutex
	held      map[int64][]byte // by block; +checklocks:mu
	order     []int64          // +checklocks:mu
}

func (r *reorder) holds(block int64) bool { return (block >= zoneRegion) == r.holdState }

func (r *reorder) WriteBlocks(p []byte, block int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := int64(0); i < int64(len(p))/BlockSize; i++ {
		b, data := block+i, p[i*BlockSize:(i+1)*BlockSize]
		if !r.holds(b) {
			if err := r.Device.WriteBlocks(data, b); err != nil {
				return err
			}
			continue
		}
		if _, ok := r.held[b]; !ok {
			r.order = append(r.order, b)
		}
		r.held[b] = append([]byte(nil), data...)
	}
	return nil
}

func (r *reorder) ReadBlocks(p []byte, block int64) error {
	if err := r.Device.ReadBlocks(p, block); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := int64(0); i < int64(len(p))/BlockSize; i++ {
		if d, ok := r.held[block+i]; ok {
			copy(p[i*BlockSize:], d)
		}
	}
	return nil
}

// Flush flushes what was written through, then issues the held writes,
// unflushed.
func (r *reorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.Device.Flush(); err != nil {
		return err
	}
	for _, b := range r.order {
		if err := r.Device.WriteBlocks(r.held[b], b); err != nil {
			return err
		}
	}
	r.held, r.order = map[int64][]byte{}, nil
	return nil
}

// TestZonedCrashDetectsBrokenOrdering shows the checker failing on zoned
// devices that order their writes wrongly: one that persists the write
// pointer before the data below it (zeros or lost appends under a
// recovered write pointer), and one whose zone state reaches the disk
// after the data (a reset's discard before its write pointer: an old
// write pointer over zeros).
func TestZonedCrashDetectsBrokenOrdering(t *testing.T) {
	for _, c := range []struct {
		name      string
		holdState bool
		kinds     []string // one of these must be found
	}{
		{"write pointer before data", false, []string{"ZEROS", "LOST"}},
		{"discard before reset", true, []string{"ZEROS", "STALE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wrap := func(d blockdev.Device) blockdev.Device {
				return &reorder{Device: d, holdState: c.holdState, held: map[int64][]byte{}}
			}
			rep, err := runZonedWith(context.Background(), Config{Seed: 1, Ops: 60, Subsets: 4, Workers: 2, MaxViolations: 1,
				Dir: scratch(t)}, wrap, nil)
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			for _, k := range c.kinds {
				found += rep.Kinds[k]
			}
			if found == 0 {
				t.Fatalf("no %v among %d crash states (violations: %s)", c.kinds, rep.States, kinds(rep.Kinds))
			}
			t.Logf("%d crash states, violations: %s; e.g. %v", rep.States, kinds(rep.Kinds), rep.Examples[0])
		})
	}
}
