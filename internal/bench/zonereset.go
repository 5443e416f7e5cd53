package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

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
		buf := make([]byte, pageSize)
		var zero float64
		for _, P := range ps {
			name := "P=" + countName(P)
			p.Step("zone-reset " + name)
			var times []float64
			var cached int64
			start := time.Now()
			for it := 0; it < 3 || (time.Since(start) < cfg.Duration && it < 10000); it++ {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err := fillFile(w, rng*pageSize, cfg.Seed+uint64(it)); err != nil {
					return err
				}
				for i := int64(0); i < P; i++ {
					if _, err := rd.ReadAt(buf, i*rng/P*pageSize); err != nil {
						return err
					}
				}
				cached = fsys.CacheStats().Pages
				t := time.Now()
				if err := w.Truncate(0); err != nil {
					return err
				}
				times = append(times, float64(time.Since(t).Nanoseconds()))
				if left := fsys.CacheStats().Pages; left != 0 {
					return fmt.Errorf("%d pages still cached after the reset", left)
				}
				p.Fraction(min(float64(time.Since(start))/float64(cfg.Duration), 1))
			}
			slices.Sort(times)
			med := times[len(times)/2]
			r := row("zone-reset", name)
			r.add("cached_pages", "pages", float64(cached))
			r.add("ns_per_reset", "ns", med)
			r.add("min", "ns", times[0])
			if P == 0 {
				zero = med
			} else {
				r.add("marginal_ns_per_page", "ns", (med-zero)/float64(P))
			}
			r.add("iterations", "resets", float64(len(times)))
			r.Note = fmt.Sprintf("zone of %s (%s pages) written to capacity; median of the iterations", fmtBytes(rng*pageSize), countName(rng))
			rows = append(rows, r)
		}
		return nil
	}()
	if cerr := fsys.Close(); err == nil {
		err = cerr
	}
	return rows, err
}
