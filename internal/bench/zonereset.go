package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

var zoneReset = Workload{
	Name: "zone-reset",
	Brief: "cost of one zone reset on zonefs (truncate of a sequential zone file to 0: the invalidate lock " +
		"exclusive, the zone's cached pages truncated, then the reset) as a function of the clean cached pages",
	Steps: func(cfg Config) int { return len(cfg.punchPages()) },
	Run:   runZoneReset,
	Plots: []PlotSpec{
		{Title: "zone-reset: time per reset", Metrics: []string{"ns_per_reset"}, YLabel: "ns (log)", Log: true},
	},
}

// runZoneReset resets a zone of R pages (R the largest of PunchPages),
// each iteration written to capacity by direct appends, with P of its
// pages read back into the cache through a buffered handle, spread
// evenly, then times one reset. The zoned device is in memory with no
// latency: what grows with P is the page-cache truncation.
func runZoneReset(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	ps := cfg.punchPages()
	rng := max(slices.Max(ps), 64)
	fsys, err := holefs.Open("", holefs.Options{Backend: holefs.BackendZonefs, CacheBytes: rng*pageSize + rng*pageSize/4 + (8 << 20),
		Zoned: blockdev.ZonedOptions{ZoneBlocks: rng, Zones: 1}})
	if err != nil {
		return nil, err
	}
	var rows []Result
	err = func() error {
		w, err := fsys.OpenFile("seq/0", os.O_WRONLY|syscall.O_DIRECT, 0)
		if err != nil {
			return err
		}
		defer w.Close()
		rd, err := fsys.OpenFile("seq/0", os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer rd.Close()
		if err := rd.Fadvise(0, 0, unix.FADV_RANDOM); err != nil { // read exactly the P pages
			return err
		}
		c := removeCost{workload: "zone-reset", op: "reset", ops: "resets",
			note:  fmt.Sprintf("zone of %s (%s pages) written to capacity; median of the iterations", fmtBytes(rng*pageSize), countName(rng)),
			pages: rng, rd: rd, cached: func() int64 { return fsys.CacheStats().Pages },
			prepare: func(it int) error { return fillFile(w, rng*pageSize, cfg.Seed+uint64(it)) },
			remove:  func() error { return w.Truncate(0) }}
		rows, err = c.run(ctx, cfg, p, ps)
		return err
	}()
	if cerr := fsys.Close(); err == nil {
		err = cerr
	}
	return rows, err
}
