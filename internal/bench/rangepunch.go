package bench

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

var rangePunch = Workload{
	Name: "range-punch",
	Brief: "N readers doing 4 KiB random buffered reads (mostly misses) of the first half of a file while a puncher " +
		"punches 64 KiB unaligned ranges of the second half at 1 op/ms: the range invalidate lock, the per-file one " +
		"(Linux's), and no puncher",
	Steps: func(Config) int { return len(rangePunchConfigs) },
	Run:   runRangePunch,
	Plots: []PlotSpec{
		{Title: "range-punch: read latency", Metrics: []string{"read_p50", "read_p99", "read_p999"}, YLabel: "µs (log)", Log: true},
	},
}

// rangePunchConfig is one configuration of range-punch.
type rangePunchConfig struct {
	name     string
	fileLock bool // the per-file invalidate lock instead of the range lock
	punch    bool
}

// rangePunchConfigs: the baseline has no puncher (the two locks take the
// same fast path then), the other two the same puncher.
var rangePunchConfigs = []rangePunchConfig{
	{"no puncher", false, false},
	{"range lock", false, true},
	{"file lock", true, true},
}

func runRangePunch(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	var rows []Result
	for _, c := range rangePunchConfigs {
		p.Step("range-punch " + c.name)
		r, err := rangePunchOnce(ctx, cfg, c, p)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", c.name, err)
		}
		rows = append(rows, r)
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	rows = addRatio(rows, "range-punch", "read_p99", "range lock", "no puncher", "<=", 1.5)
	rows = addRatio(rows, "range-punch", "read_p99", "file lock", "no puncher", "", 0)
	rows = addRatio(rows, "range-punch", "reader_ops", "range lock", "file lock", "", 0)
	return rows, nil
}

// rangePunchOnce runs one configuration: a file of 2 x CacheBytes with a
// cache of a quarter of that, so the readers of its first half mostly
// miss and fill; the puncher's unaligned ranges make it read and zero its
// edge pages, device reads under the exclusive lock, as any remover's.
func rangePunchOnce(ctx context.Context, cfg Config, c rangePunchConfig, p Progress) (Result, error) {
	fileBytes := 2 * roundPages(cfg.CacheBytes)
	cache := max(roundPages(cfg.CacheBytes/4), minCacheBytes)
	pages := fileBytes / pageSize
	half := pages / 2
	const span = 16 // pages per punch

	e, err := newDeviceEnv(cfg, holefs.Options{Backend: holefs.BackendExtent, CacheBytes: cache,
		FileInvalidateLock: c.fileLock}, fileBytes)
	if err != nil {
		return Result{}, err
	}
	defer e.close()
	if err := e.createFilled("range", fileBytes, cfg.Seed); err != nil {
		return Result{}, err
	}
	nr, np := cfg.Readers, 0
	if c.punch {
		np = 1
	}
	files := make([]*holefs.File, nr+np)
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range files {
		flag := os.O_RDWR
		if i < nr {
			flag = os.O_RDONLY
		}
		if files[i], err = e.fs.OpenFile("range", flag, 0); err != nil {
			return Result{}, err
		}
		if i < nr {
			// Random reads fill exactly the page asked for: no readahead
			// window reaches from the first half into the second.
			if err := files[i].Fadvise(0, 0, unix.FADV_RANDOM); err != nil {
				return Result{}, err
			}
		}
	}

	e.measure(cfg)
	s0 := e.stats()
	hists := make([]hist, nr)
	var phist hist
	var reads, punches atomic.Int64
	var ferr firstErr
	tm := timed(ctx, cfg.Duration/3, cfg.Duration, p, nr+np, func(g int, run *run) {
		f := files[g]
		if g < nr {
			r := cfg.rng("range-punch/reader", g)
			buf := make([]byte, pageSize)
			reads.Add(measureOps(run, &hists[g], &ferr, 0,
				func() int64 { return r.Int64N(half) * pageSize },
				func(off int64) error { _, err := f.ReadAt(buf, off); return err }))
			return
		}
		r := cfg.rng("range-punch/puncher", 0)
		punches.Add(measureOps(run, &phist, &ferr, time.Millisecond,
			func() int64 { return (half+r.Int64N(half-span-1))*pageSize + 512 },
			func(off int64) error { return f.Fallocate(punchMode, off, span*pageSize) }))
	})
	if ferr.err != nil {
		return Result{}, ferr.err
	}
	s1 := e.stats()
	var all hist
	for i := range hists {
		all.merge(&hists[i])
	}
	sec := tm.seconds()
	r := row("range-punch", c.name)
	r.add("reader_ops", "ops/s", float64(reads.Load())/sec)
	r.add("read_p50", "µs", all.quantile(0.50)/1e3)
	r.add("read_p99", "µs", all.quantile(0.99)/1e3)
	r.add("read_p999", "µs", all.quantile(0.999)/1e3)
	r.add("hit_ratio", "%", hitRatio(s0.Hits, s0.Misses, s1.Hits, s1.Misses))
	r.add("fill_waits", "/s", float64(s1.InvalidateSharedWaits-s0.InvalidateSharedWaits)/sec)
	r.add("fill_wait", "ms/s", (s1.InvalidateSharedWait-s0.InvalidateSharedWait).Seconds()*1e3/sec)
	if c.punch {
		r.add("punch_ops", "ops/s", float64(punches.Load())/sec)
		r.add("punch_p50", "µs", phist.quantile(0.5)/1e3)
	}
	r.add("other_cpu", "cores", tm.otherCPU)
	lock := map[bool]string{true: "per-file invalidate lock", false: "range invalidate lock"}[c.fileLock]
	r.Note = fmt.Sprintf("file %s, cache %s, %d readers of its first half, %s; warm-up %v, then measured %v",
		fmtBytes(fileBytes), fmtBytes(cache), nr, lock, cfg.Duration/3, cfg.Duration)
	if c.punch {
		r.Note += fmt.Sprintf("; 1 puncher of %d-page ranges (+512 B) in the second half, 1 op/ms", span)
	}
	return r, nil
}
