package bench

import (
	"context"
	"fmt"
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
	ts, err := newImageTargets(cfg, "fsync")
	if err != nil {
		return nil, err
	}
	defer ts.remove()
	open := func(name, label string, noLog bool) (imageTarget, error) {
		flushes := new(atomic.Int64)
		t, err := ts.image(name, label, holefs.MkfsOptions{NoLog: noLog}, holefs.Options{
			WrapDevice: func(d blockdev.Device) blockdev.Device { return countFlushes{d, flushes} }})
		t.flushes = flushes
		return t, err
	}
	wal, err := open("log", "holefs image", false)
	if err != nil {
		return nil, err
	}
	old, err := open("nolog", "holefs image no-log", true)
	if err != nil {
		return nil, err
	}
	plain, err := ts.plain()
	if err != nil {
		return nil, err
	}
	phases := []imagePhase{
		func(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
			return fsyncThreads(ctx, cfg, p, t, 1)
		},
		func(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
			return fsyncThreads(ctx, cfg, p, t, 4)
		},
		createFsync,
	}
	rows, err := ts.runPhases(ctx, p, []targetPhases{{wal, phases}, {old, phases}, {plain, phases}})
	if err != nil {
		return rows, err
	}
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

// fsyncThreads runs writeFsync on a file per thread.
func fsyncThreads(ctx context.Context, cfg Config, p Progress, t imageTarget, threads int) (Result, error) {
	name := fmt.Sprintf("fsync %d thread", threads)
	if threads > 1 {
		name += "s"
	}
	p.Step("fsync " + t.name + " " + name)
	names := make([]string, threads)
	for i := range names {
		names[i] = fmt.Sprintf("fsync-%d-%d", threads, i)
	}
	return writeFsync(ctx, cfg, p, t, names, "fsync", row("fsync", t.name+" "+name))
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
			name := fmt.Sprintf("small-%07d", n)
			n++
			if lerr = createWrite(t, name, buf, true); lerr != nil {
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
