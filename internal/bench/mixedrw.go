package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

var mixedRW = Workload{
	Name: "mixed-rw",
	Brief: "N readers doing 4 KiB random buffered reads (mostly misses) of a file 4x the cache, " +
		"beside M buffered writers of other ranges of the same file (and, with --punch, a punch/zero-range issuer), per lock mode",
	Steps: func(Config) int { return len(holefs.LockModes) + len(mixedBackends) },
	Run:   runMixedRW,
	Plots: []PlotSpec{
		{Title: "mixed-rw: reader and writer throughput", Metrics: []string{"reader_ops", "writer_ops"}, YLabel: "ops/s"},
		{Title: "mixed-rw: read latency", Metrics: []string{"read_p50", "read_p99", "read_p999"}, YLabel: "µs (log)", Log: true},
	},
}

// firstErr keeps the first error reported by any goroutine.
type firstErr struct {
	once sync.Once
	err  error
}

func (f *firstErr) set(err error) {
	if err != nil {
		f.once.Do(func() { f.err = err })
	}
}

// mixedBackends are the other backends mixed-rw runs, in invalidate mode,
// beside extentfs in every lock mode; daxBackend is extentfs in DAX mode.
var mixedBackends = []string{holefs.BackendLog, holefs.BackendPassthrough, daxBackend}

// mixedConfig is one backend in one lock mode, as mixed-rw and cached-rw
// run it.
type mixedConfig struct {
	backend string
	mode    holefs.LockMode
}

// name is the row's config: the lock mode, after the backend where it is
// not extentfs (the ratios name extentfs's rows by the mode alone).
func (c mixedConfig) name() string {
	if c.backend == holefs.BackendExtent {
		return c.mode.String()
	}
	return c.backend + " " + c.mode.String()
}

// runMixedConfigs runs mixedOnce in each config (cached as mixedOnce
// takes it) and gives a row each, named by the config.
func runMixedConfigs(ctx context.Context, cfg Config, p Progress, workload string, configs []mixedConfig, cached bool) ([]Result, error) {
	var rows []Result
	for _, c := range configs {
		name := c.name()
		p.Step(workload + " " + name)
		r, err := mixedOnce(ctx, cfg, c.backend, c.mode, p, cached)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", name, err)
		}
		r.Config = name
		rows = append(rows, r)
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	return rows, nil
}

func runMixedRW(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	var configs []mixedConfig
	for _, mode := range holefs.LockModes {
		configs = append(configs, mixedConfig{holefs.BackendExtent, mode})
	}
	for _, b := range mixedBackends {
		configs = append(configs, mixedConfig{b, holefs.LockInvalidate})
	}
	rows, err := runMixedConfigs(ctx, cfg, p, "mixed-rw", configs, false)
	if err != nil {
		return rows, err
	}
	rows = addRatio(rows, "mixed-rw", "reader_ops", "invalidate", "rwsem", ">=", 3)
	rows = addRatio(rows, "mixed-rw", "reader_ops", "invalidate", "none", ">=", 0.9)
	rows = addRatio(rows, "mixed-rw", "read_p99", "rwsem", "invalidate", "", 0)
	rows = addRatio(rows, "mixed-rw", "writer_ops", "invalidate", "rwsem", "", 0)
	return rows, nil
}

// mixedOnce runs one mixed-rw configuration, or with cached set one of
// cached-rw: the seed's case, 1 reader and 1 writer of a file a quarter of
// the cache, no remover.
func mixedOnce(ctx context.Context, cfg Config, backend string, mode holefs.LockMode, p Progress, cached bool) (Result, error) {
	cache := roundPages(cfg.CacheBytes)
	fileBytes := 4 * cache
	workload, nr, nw, punch := "mixed-rw", cfg.Readers, cfg.Writers, cfg.Punch
	if cached {
		fileBytes = cache / 4
		workload, nr, nw, punch = "cached-rw", 1, 1, false
	}
	pages := fileBytes / pageSize
	readPages := pages * 3 / 4 // readers: the first three quarters
	writeStart, writePages := readPages, pages-readPages

	e, err := newBackendEnv(cfg, backend, mode, cache, fileBytes)
	if err != nil {
		return Result{}, err
	}
	defer e.close()
	if err := e.createFilled("mixed", fileBytes, cfg.Seed); err != nil {
		return Result{}, err
	}
	if cached {
		// createFilled dropped the pages: read them back in, so the
		// measured reads are the seed's cache hits.
		if err := e.readAll("mixed"); err != nil {
			return Result{}, err
		}
	}
	var handles []*holefs.File
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	open := func(flag int) (*holefs.File, error) {
		h, err := e.fs.OpenFile("mixed", flag, 0)
		if err == nil {
			handles = append(handles, h)
		}
		return h, err
	}
	np := 0
	if punch {
		np = 1
	}
	files := make([]*holefs.File, nr+nw+np)
	for i := range files {
		flag := os.O_RDWR
		if i < nr {
			flag = os.O_RDONLY
		}
		if files[i], err = open(flag); err != nil {
			return Result{}, err
		}
	}

	e.measure(cfg)
	s0, d0 := e.stats(), e.dev.stats()
	hists := make([]hist, nr)
	whists := make([]hist, nw)
	var phist hist
	var reads, writes, punches atomic.Int64
	var punchOnly atomic.Bool // the backend refused zero range
	var ferr firstErr
	tm := timed(ctx, cfg.Duration/3, cfg.Duration, p, nr+nw+np, func(g int, run *run) {
		f := files[g]
		switch {
		case g < nr: // reader
			r := cfg.rng("mixed-rw/reader", g)
			buf := make([]byte, pageSize)
			reads.Add(measureOps(run, &hists[g], &ferr, 0,
				func() int64 { return r.Int64N(readPages) * pageSize },
				func(off int64) error { _, err := f.ReadAt(buf, off); return err }))
		case g < nr+nw: // writer of its own part of the last quarter
			w := g - nr
			lo := writeStart + int64(w)*writePages/int64(nw)
			hi := writeStart + int64(w+1)*writePages/int64(nw)
			r := cfg.rng("mixed-rw/writer", w)
			buf := fillPattern(cfg.Seed+uint64(w), pageSize)
			writes.Add(measureOps(run, &whists[w], &ferr, 0,
				func() int64 { return (lo + r.Int64N(max(hi-lo, 1))) * pageSize },
				func(off int64) error { _, err := f.WriteAt(buf, off); return err }))
		default: // punch / zero-range issuer, one operation per millisecond
			r := cfg.rng("mixed-rw/punch", 0)
			const span = 16
			k := 0 // operations done: every other one is a zero range
			var mode uint32
			punches.Add(measureOps(run, &phist, &ferr, time.Millisecond,
				func() int64 {
					off := (writeStart + r.Int64N(max(writePages-span, 1))) * pageSize
					mode = uint32(unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE)
					if k%2 == 1 && !punchOnly.Load() {
						mode = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE
					}
					return off
				},
				func(off int64) error {
					err := f.Fallocate(mode, off, span*pageSize)
					if errors.Is(err, syscall.EOPNOTSUPP) && mode&unix.FALLOC_FL_ZERO_RANGE != 0 {
						// No zero range (passthrough over tmpfs): punches only.
						punchOnly.Store(true)
						return errSkip
					}
					if err == nil {
						k++
					}
					return err
				}))
		}
	})
	if ferr.err != nil {
		return Result{}, ferr.err
	}
	s1, d1 := e.stats(), e.dev.stats()
	var all, wall hist
	for i := range hists {
		all.merge(&hists[i])
	}
	for i := range whists {
		wall.merge(&whists[i])
	}
	sec := tm.seconds()
	r := row(workload, mode.String())
	r.add("reader_ops", "ops/s", float64(reads.Load())/sec)
	r.add("writer_ops", "ops/s", float64(writes.Load())/sec)
	r.add("read_p50", "µs", all.quantile(0.50)/1e3)
	r.add("read_p99", "µs", all.quantile(0.99)/1e3)
	r.add("read_p999", "µs", all.quantile(0.999)/1e3)
	if nw > 0 {
		r.add("write_p99", "µs", wall.quantile(0.99)/1e3)
		r.add("write_max", "µs", float64(wall.max)/1e3)
	}
	r.add("hit_ratio", "%", hitRatio(s0.Hits, s0.Misses, s1.Hits, s1.Misses))
	r.add("dev_read", "µs", d1.sub(d0).meanReadUs())
	if punch {
		r.add("punch_ops", "ops/s", float64(punches.Load())/sec)
		r.add("punch_p50", "µs", phist.quantile(0.5)/1e3)
		r.add("punch_max", "µs", float64(phist.max)/1e3)
	}
	r.add("other_cpu", "cores", tm.otherCPU)
	issuer := map[bool]string{true: ", 1 punch/zero issuer (1 op/ms)", false: ""}[punch]
	if punchOnly.Load() {
		issuer = ", 1 punch issuer (1 op/ms; zero range not supported)"
	}
	r.Note = fmt.Sprintf("file %s, cache %s, %d readers, %d writers%s; warm-up %v, then measured %v", fmtBytes(fileBytes), fmtBytes(cache), nr, nw,
		issuer, cfg.Duration/3, cfg.Duration)
	return r, nil
}

func hitRatio(h0, m0, h1, m1 int64) float64 {
	h, m := h1-h0, m1-m0
	if h+m == 0 {
		return 0
	}
	return 100 * float64(h) / float64(h+m)
}
