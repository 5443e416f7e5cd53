package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

var punchScale = Workload{
	Name: "punch-scale",
	Brief: "cost of one hole punch as a function of the clean cached pages in its range (the range fixed, " +
		"fully written), and of the range size over a sparse file with nothing cached",
	Steps: func(cfg Config) int { return len(cfg.punchPages()) + len(cfg.punchRanges()) },
	Run:   runPunchScale,
	Plots: []PlotSpec{
		{Title: "punch-scale: time per punch", Metrics: []string{"ns_per_punch"}, YLabel: "ns (log)", Log: true},
	},
}

const punchMode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE

func runPunchScale(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	rows, err := punchCached(ctx, cfg, p)
	if err != nil || ctx.Err() != nil {
		return rows, err
	}
	sparse, err := punchSparse(ctx, cfg, p)
	return append(rows, sparse...), err
}

func countName(n int64) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// punchCached punches a range of R pages (R the largest of PunchPages),
// written and clean, with P of its pages cached, spread evenly. Each
// iteration rewrites the range, writes it back, drops it from the cache,
// reads the P pages back and times one punch; the punch does no device
// I/O (whole pages, nothing dirty).
func punchCached(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	ps := cfg.punchPages()
	rng := max(slices.Max(ps), 64)
	rangeBytes := rng * pageSize
	e, err := newEnv(cfg, holefs.LockInvalidate, rangeBytes+rangeBytes/4+(8<<20), rangeBytes)
	if err != nil {
		return nil, err
	}
	var rows []Result
	err = func() error {
		f, err := e.fs.Create("punch")
		if err != nil {
			return err
		}
		defer f.Close()
		rd, err := e.fs.OpenFile("punch", os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer rd.Close()
		if err := rd.Fadvise(0, 0, unix.FADV_RANDOM); err != nil { // read exactly the P pages
			return err
		}
		c := removeCost{workload: "punch-scale", op: "punch", ops: "punches", perPage: true,
			note:  fmt.Sprintf("range %s (%s pages) written and clean; median of the iterations", fmtBytes(rangeBytes), countName(rng)),
			pages: rng, rd: rd, cached: func() int64 { return e.stats().Pages },
			prepare: func(it int) error {
				if err := fillFile(f, rangeBytes, cfg.Seed+uint64(it)); err != nil {
					return err
				}
				if err := f.Sync(); err != nil {
					return err
				}
				return f.Fadvise(0, 0, unix.FADV_DONTNEED)
			},
			remove: func() error { return f.Fallocate(punchMode, 0, rangeBytes) }}
		rows, err = c.run(ctx, cfg, p, ps)
		return err
	}()
	if cerr := e.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rows, err
	}
	// Linear means the per-page cost stays flat as P grows 100x.
	var first, last string
	for _, P := range ps {
		if P > 0 && first == "" {
			first = "P=" + countName(P)
		}
		if P > 0 {
			last = "P=" + countName(P)
		}
	}
	if first != "" && first != last {
		rows = addRatio(rows, "punch-scale", "ns_per_page", last, first, "<=", 2)
	}
	return rows, nil
}

// punchSparse punches ranges of growing size at offset 0 of a sparse file
// (Truncate to the largest range) with nothing cached: the cost must not
// grow with the range.
func punchSparse(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	ranges := cfg.punchRanges()
	e, err := newEnv(cfg, holefs.LockInvalidate, roundPages(cfg.CacheBytes), 64<<20)
	if err != nil {
		return nil, err
	}
	var rows []Result
	err = func() error {
		f, err := e.fs.Create("sparse")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Truncate(slices.Max(ranges)); err != nil {
			return err
		}
		for _, size := range ranges {
			name := "sparse " + fmtBytes(size)
			p.Step("punch-scale " + name)
			var h hist
			var ferr firstErr
			tm := timed(ctx, 0, min(cfg.Duration, time.Second), p, 1, func(_ int, run *run) {
				for !run.stopped() {
					t := time.Now()
					if err := f.Fallocate(punchMode, 0, size); err != nil {
						ferr.set(err)
						return
					}
					h.record(time.Since(t))
				}
			})
			if ferr.err != nil {
				return ferr.err
			}
			r := row("punch-scale", name)
			r.add("cached_pages", "pages", float64(e.stats().Pages))
			r.addT("ns_per_punch", "ns", h.mean(), sparseTarget(size))
			r.add("p50", "ns", h.quantile(0.5))
			r.add("p99", "ns", h.quantile(0.99))
			r.add("iterations", "punches", float64(h.n))
			r.add("other_cpu", "cores", tm.otherCPU)
			r.Note = fmt.Sprintf("sparse file of %s, nothing cached; mean over %.1fs", fmtBytes(slices.Max(ranges)), tm.seconds())
			rows = append(rows, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return nil
	}()
	if cerr := e.close(); err == nil {
		err = cerr
	}
	return rows, err
}

func sparseTarget(size int64) *Target {
	if size >= 1<<40 {
		return &Target{Op: "<=", Bound: 50000}
	}
	return nil
}
