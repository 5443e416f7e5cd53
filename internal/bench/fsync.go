package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

var fsyncWL = Workload{
	Name: "fsync",
	Brief: "fsync cost on a durable image with its write-ahead log, on one without (each commit a meta.db " +
		"transaction), and on plain files of the same filesystem: 4 KiB write+fsync at 1 and 4 threads, " +
		"small-file create+write+fsync",
	Steps: func(Config) int { return 9 },
	Run:   runFsync,
	Plots: []PlotSpec{
		{Title: "fsync: latency (4 KiB write + fsync)", Metrics: []string{"fsync_mean"}, YLabel: "µs"},
	},
}

// fsyncGoal is issue 14's goal for an image's fsync: at most 1.3 times a
// plain file's on the same filesystem.
const fsyncGoal = 1.3

func runFsync(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	base, err := os.MkdirTemp(cfg.imageDir(), "holefs-bench-fsync-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	var images []*holefs.FS
	defer func() {
		for _, fsys := range images {
			fsys.Close()
		}
	}()
	open := func(name string, noLog bool) (imageTarget, error) {
		path := filepath.Join(base, name)
		if err := holefs.Mkfs(path, holefs.MkfsOptions{SizeBytes: 4 << 30, NoLog: noLog}); err != nil {
			return imageTarget{}, err
		}
		flushes := new(atomic.Int64)
		fsys, err := holefs.Open(path, holefs.Options{CacheBytes: roundPages(cfg.CacheBytes),
			WrapDevice: func(d blockdev.Device) blockdev.Device { return countFlushes{d, flushes} }})
		if err != nil {
			return imageTarget{}, err
		}
		images = append(images, fsys)
		return imageTarget{create: func(name string) (imageFile, error) { return fsys.Create(name) },
			remove: fsys.Remove, sync: fsys.Sync, flushes: flushes}, nil
	}
	wal, err := open("log", false)
	if err != nil {
		return nil, err
	}
	wal.name = "holefs image"
	old, err := open("nolog", true)
	if err != nil {
		return nil, err
	}
	old.name = "holefs image no-log"
	plainDir := filepath.Join(base, "plain")
	if err := os.Mkdir(plainDir, 0o755); err != nil {
		return nil, err
	}
	plain := imageTarget{name: "plain files",
		create: func(name string) (imageFile, error) { return os.Create(filepath.Join(plainDir, name)) },
		remove: func(name string) error { return os.Remove(filepath.Join(plainDir, name)) },
		sync:   func() error { return syncDir(plainDir) }}
	note := "on " + cfg.imageDir() + " (" + fsType(cfg.imageDir()) + ")"
	var rows []Result
	for _, t := range []imageTarget{wal, old, plain} {
		for _, ph := range []func(context.Context, Config, Progress, imageTarget) (Result, error){
			func(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
				return fsyncThreads(ctx, cfg, p, t, 1)
			},
			func(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
				return fsyncThreads(ctx, cfg, p, t, 4)
			},
			createFsync,
		} {
			r, err := ph(ctx, cfg, p, t)
			if err != nil {
				return rows, fmt.Errorf("%s: %w", t.name, err)
			}
			r.Note = note
			rows = append(rows, r)
			if ctx.Err() != nil {
				return rows, ctx.Err()
			}
		}
	}
	for _, fsys := range images {
		if err := fsys.Close(); err != nil {
			return rows, err
		}
	}
	images = nil
	for _, cfgName := range []string{"fsync 1 thread", "fsync 4 threads", "create+fsync"} {
		metric := "fsync_mean"
		if cfgName == "create+fsync" {
			metric = "create_mean"
		}
		rows = addRatio(rows, "fsync", metric, "holefs image "+cfgName, "plain files "+cfgName, "<=", fsyncGoal)
		rows = addRatio(rows, "fsync", metric, "holefs image no-log "+cfgName, "plain files "+cfgName, "", 0)
	}
	return rows, nil
}

// fsyncThreads overwrites random 4 KiB blocks of a 1 MiB file per thread,
// each write followed by fsync of the file: on an image every fsync writes
// one page back and commits, and concurrent fsyncs share commits.
func fsyncThreads(ctx context.Context, cfg Config, p Progress, t imageTarget, threads int) (Result, error) {
	name := fmt.Sprintf("fsync %d thread", threads)
	if threads > 1 {
		name += "s"
	}
	p.Step("fsync " + t.name + " " + name)
	const size = 1 << 20
	files := make([]imageFile, threads)
	buf := fillPattern(cfg.Seed, size)
	for i := range files {
		f, err := t.create(fmt.Sprintf("fsync-%d-%d", threads, i))
		if err != nil {
			return Result{}, err
		}
		defer f.Close()
		if _, err := f.WriteAt(buf, 0); err != nil {
			return Result{}, err
		}
		if err := f.Sync(); err != nil {
			return Result{}, err
		}
		files[i] = f
	}
	f0 := t.flushCount()
	hs := make([]hist, threads)
	errs := make([]error, threads)
	tm := timed(ctx, 0, cfg.Duration, p, threads, func(g int, run *run) {
		rng := cfg.rng("fsync", g)
		f := files[g]
		for !run.stopped() {
			off := rng.Int64N(size/pageSize) * pageSize
			t0 := time.Now()
			if _, errs[g] = f.WriteAt(buf[off:off+pageSize], off); errs[g] != nil {
				return
			}
			if errs[g] = f.Sync(); errs[g] != nil {
				return
			}
			hs[g].record(time.Since(t0))
		}
	})
	var h hist
	for g := range hs {
		if errs[g] != nil {
			return Result{}, errs[g]
		}
		h.merge(&hs[g])
	}
	r := row("fsync", t.name+" "+name)
	r.add("fsyncs", "ops/s", float64(h.n)/tm.seconds())
	r.add("fsync_mean", "µs", h.mean()/1e3)
	r.add("fsync_p99", "µs", h.quantile(0.99)/1e3)
	t.addFlushes(&r, f0, h.n)
	return r, nil
}

// createFsync creates a file, writes 4 KiB to it, fsyncs and closes it,
// over and over: each fsync commits a new inode, its entry and a newly
// mapped block.
func createFsync(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
	p.Step("fsync " + t.name + " create+fsync")
	buf := fillPattern(cfg.Seed+1, pageSize)
	var h hist
	var lerr error
	n := 0
	f0 := t.flushCount()
	tm := timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
		for !run.stopped() {
			t0 := time.Now()
			f, err := t.create(fmt.Sprintf("small-%07d", n))
			if err != nil {
				lerr = err
				return
			}
			n++
			if _, err := f.WriteAt(buf, 0); err != nil {
				f.Close()
				lerr = err
				return
			}
			if err := f.Sync(); err != nil {
				f.Close()
				lerr = err
				return
			}
			if lerr = f.Close(); lerr != nil {
				return
			}
			h.record(time.Since(t0))
		}
	})
	if lerr != nil {
		return Result{}, lerr
	}
	r := row("fsync", t.name+" create+fsync")
	r.add("creates", "files/s", float64(h.n)/tm.seconds())
	r.add("create_mean", "µs", h.mean()/1e3)
	r.add("create_p99", "µs", h.quantile(0.99)/1e3)
	t.addFlushes(&r, f0, h.n)
	return r, nil
}

// countFlushes counts an image device's flushes: the load-independent
// cost of a commit (the flushes of meta.db, which bbolt makes on its own
// file, are not counted).
type countFlushes struct {
	blockdev.Device
	n *atomic.Int64
}

func (c countFlushes) Flush() error {
	c.n.Add(1)
	return c.Device.Flush()
}

func (t imageTarget) flushCount() int64 {
	if t.flushes == nil {
		return 0
	}
	return t.flushes.Load()
}

// addFlushes adds the device flushes per operation of an image row.
func (t imageTarget) addFlushes(r *Result, before int64, ops uint64) {
	if t.flushes != nil && ops > 0 {
		r.add("dev_flushes", "per op", float64(t.flushes.Load()-before)/float64(ops))
	}
}
