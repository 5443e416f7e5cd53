package repro

import (
	"fmt"
	"os"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap/zonefs"
	"github.com/holefs/holefs/vfs"
)

// ZoneRemovers are the block-removing operations of the zonefs backend:
// truncating a sequential zone file to 0 resets its zone.
var ZoneRemovers = []string{"reset"}

// zoneCapacity is the victim zone's capacity in pages.
const zoneCapacity = 8

// runZonefs plays "reset vs fill" on a sequential zone file. The race is
// the seed's with a zone reset as the remover, but what a reset removes
// is the zone's data, not a block another file reuses: the filler reads
// the zone while the reset is stopped between its page-cache truncation
// and its zone command, so it caches the pre-reset data after the
// truncation that should have been the last word on it. The reset then
// goes through; the page survives it. A zone finish (truncate to the
// capacity) then makes the victim page part of the file again, where it
// must read as zeros: under LockNone it reads the pre-reset data.
func runZonefs(s Scenario) (Outcome, error) {
	if s.Remove != "reset" || s.Writeback {
		return Outcome{}, ErrUnsupported
	}
	e, a, w, err := newZoneEnv(s)
	if err != nil {
		return Outcome{}, err
	}
	defer e.fs.Close()
	defer a.Close()
	defer w.Close()
	var view *vfs.View
	if s.Fill == "fault" || s.Fill == "madvise" {
		if view, err = a.Mmap(0, pages*pg, false); err != nil {
			return Outcome{}, err
		}
		defer view.Unmap()
	}
	fill, err := fillFunc(s.Fill, a, view, make([]byte, pg))
	if err != nil {
		return Outcome{}, err
	}

	// 1 and 2. The filler stops before it creates the victim page; the
	// reset truncates the page cache and stops before the zone command,
	// unless a lock the filler holds stops it first.
	r, err := e.startRace(a, fill, func() error { return w.Truncate(0) })
	if err != nil {
		return Outcome{}, err
	}
	// 3. The filler goes on: it looks the zone up and stops before reading
	// it, or blocks on the lock the reset holds.
	interleaved, err := r.toLookup()
	if err != nil {
		return Outcome{}, err
	}
	// 4. The filler reads the zone, still holding its old data, and
	// caches it (unless it is blocked); then the reset's zone command runs.
	// The filler may also block behind the reset after its lookup: a fault
	// whose view entry the reset zapped before the fault's read of it
	// returned faults again, and waits for the lock the reset holds.
	r.releaseFiller()
	if _, err := waitUntil(func() bool { return closed(r.fillDone) },
		func() bool { return r.waiters() > 0 && (!e.afterMap.wasReached() || e.afterTrunc.wasReached()) }); err != nil {
		return Outcome{}, err
	}
	r.releaseRemover()
	if err := r.finish(); err != nil {
		return Outcome{}, err
	}
	if r.removeErr != nil {
		return Outcome{}, fmt.Errorf("reset: %w", r.removeErr)
	}
	// 5. Finish the zone: the whole capacity is the file now, and the
	// victim page, never written since the reset, must read as zeros.
	if err := w.Truncate(zoneCapacity * pg); err != nil {
		return Outcome{}, fmt.Errorf("finish: %w", err)
	}
	got := make([]byte, pg)
	if _, err := a.ReadAt(got, victim*pg); err != nil {
		return Outcome{}, err
	}
	want := make([]byte, pg)
	v := classify(got, want)
	if view != nil && v == OK {
		if _, err := view.ReadAt(got, victim*pg); err != nil {
			return Outcome{}, err
		}
		v = classify(got, want)
	}
	return Outcome{Verdict: v, Interleaved: interleaved}, nil
}

// newZoneEnv makes a zonefs of one sequential zone whose file (ino as the
// zonefs backend numbers it) holds the pattern pages, written directly,
// and returns a buffered reader and a direct writer of it.
func newZoneEnv(s Scenario) (*env, *vfs.File, *vfs.File, error) {
	e := &env{beforeFill: newStop(), afterMap: newStop(), afterTrunc: newStop()}
	dev, err := blockdev.NewZoned(blockdev.ZonedOptions{ZoneBlocks: zoneCapacity, Zones: 1})
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := zonefs.New(dev, zonefs.Mount{})
	if err != nil {
		return nil, nil, nil, err
	}
	e.mount(vfs.Backend{Store: store, Device: dev, FixedNamespace: true}, s)
	zf := store.Files()[0]
	in, err := e.fs.AddFixed(e.fs.Root(), "0", syscall.S_IFREG|0o640, zf.Ino(), 0)
	if err != nil {
		e.fs.Close()
		return nil, nil, nil, err
	}
	w, err := e.fs.Open(in, os.O_RDWR|syscall.O_DIRECT)
	if err != nil {
		e.fs.Close()
		return nil, nil, nil, err
	}
	var data []byte
	for i := 0; i < pages; i++ {
		data = append(data, pattern(i)...)
	}
	a, err := e.fs.Open(in, os.O_RDONLY)
	if err == nil {
		_, _, err = w.WriteAt(data, 0)
	}
	if err != nil {
		e.fs.Close()
		return nil, nil, nil, err
	}
	return e, a, w, nil
}
