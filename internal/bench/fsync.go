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
		"small-file create+write+fsync; the three take turns",
	Steps: func(cfg Config) int { return len(fsyncPhases) * fsyncTargets * fsyncTurns(cfg) },
	Run:   runFsync,
	Plots: []PlotSpec{
		{Title: "fsync: latency (4 KiB write + fsync)", Metrics: []string{"fsync_mean"}, YLabel: "µs"},
	},
}

// fsyncGoal is issue 14's goal for an image's fsync: at most 1.3 times a
// plain file's on the same filesystem.
const fsyncGoal = 1.3

// fsyncTargets is how many configurations the fsync workload compares:
// an image with a log, one without, and plain files.
const fsyncTargets = 3

// fsyncTurns is how many turns each configuration gets in each phase, as
// in hit (hitTurns): on a loaded machine one run each measured the load
// of the moment, and the ratio image÷plain of consecutive runs went from
// 1.0 to 2.6.
func fsyncTurns(cfg Config) int { return hitTurns(cfg) }

// fsyncTurn runs one turn of a phase on one target for d and gives the
// latencies of its operations.
type fsyncTurn func(ctx context.Context, d time.Duration, p Progress) (hist, timing, error)

// fsyncPhase is one measurement of the fsync workload. open prepares a
// target for it, outside the time measured, and returns its turn and what
// releases the files it opened.
type fsyncPhase struct {
	name   string // the row's config after the target's name
	metric string // the latency metrics' prefix
	open   func(cfg Config, t imageTarget) (fsyncTurn, func(), error)
}

var fsyncPhases = []fsyncPhase{
	{name: "fsync 1 thread", metric: "fsync", open: fsyncThreads(1)},
	{name: "fsync 4 threads", metric: "fsync", open: fsyncThreads(4)},
	{name: "create+fsync", metric: "create", open: openCreateFsync},
}

// fsyncTally sums a target's turns of one phase.
type fsyncTally struct {
	h                    hist
	elapsed              time.Duration
	flushes, checkpoints int64
}

func runFsync(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	ts, err := newImageTargets(cfg, "fsync")
	if err != nil {
		return nil, err
	}
	defer ts.remove()
	// Every configuration is set up first, so that they can take turns.
	open := func(name, label string, noLog bool) (imageTarget, error) {
		flushes, checkpoints := new(atomic.Int64), new(atomic.Int64)
		t, err := ts.image(name, label, holefs.MkfsOptions{NoLog: noLog}, holefs.Options{
			WrapDevice: func(d blockdev.Device) blockdev.Device { return countFlushes{d, flushes} },
			Hooks:      &holefs.Hooks{AfterCheckpoint: func() { checkpoints.Add(1) }}})
		t.flushes = flushes
		if !noLog {
			t.checkpoints = checkpoints
		}
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
	targets := []imageTarget{wal, old, plain}
	note := "on " + cfg.imageDir() + " (" + fsType(cfg.imageDir()) + ")"
	var rows []Result
	for _, ph := range fsyncPhases {
		tally, err := fsyncTurnsOf(ctx, cfg, p, targets, ph)
		if err != nil {
			return rows, err
		}
		for i, t := range targets {
			rows = append(rows, tally[i].result(t, ph, note))
		}
	}
	if err := ts.close(); err != nil {
		return rows, err
	}
	for _, ph := range fsyncPhases {
		metric := ph.metric + "_mean"
		rows = addRatio(rows, "fsync", metric, "holefs image "+ph.name, "plain files "+ph.name, "<=", fsyncGoal)
		rows = addRatio(rows, "fsync", metric, "holefs image no-log "+ph.name, "plain files "+ph.name, "", 0)
	}
	return rows, nil
}

// fsyncTurnsOf runs phase ph on every target for fsyncTurns(cfg) turns of
// an equal share of the duration, in an order reversed every turn, and
// sums each target's turns.
func fsyncTurnsOf(ctx context.Context, cfg Config, p Progress, targets []imageTarget, ph fsyncPhase) ([]fsyncTally, error) {
	turns := fsyncTurns(cfg)
	runs := make([]fsyncTurn, len(targets))
	for i, t := range targets {
		turn, release, err := ph.open(cfg, t)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", t.name, ph.name, err)
		}
		defer release()
		runs[i] = turn
	}
	tally := make([]fsyncTally, len(targets))
	for turn := range turns {
		for k := range targets {
			i := k
			if turn%2 == 1 {
				i = len(targets) - 1 - k
			}
			t := targets[i]
			if turns > 1 {
				p.Step(fmt.Sprintf("fsync %s %s (turn %d of %d)", t.name, ph.name, turn+1, turns))
			} else {
				p.Step("fsync " + t.name + " " + ph.name)
			}
			f0, c0 := t.flushCount(), t.checkpointCount()
			h, tm, err := runs[i](ctx, cfg.Duration/time.Duration(turns), p)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", t.name, ph.name, err)
			}
			a := &tally[i]
			a.h.merge(&h)
			a.elapsed += tm.elapsed
			a.flushes += t.flushCount() - f0
			a.checkpoints += t.checkpointCount() - c0
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	return tally, nil
}

// result is target t's row of phase ph.
func (a *fsyncTally) result(t imageTarget, ph fsyncPhase, note string) Result {
	r := row("fsync", t.name+" "+ph.name)
	r.Note = note
	secs := a.elapsed.Seconds()
	if ph.metric == "create" {
		r.add("creates", "files/s", float64(a.h.n)/secs)
	} else {
		r.add("fsyncs", "ops/s", float64(a.h.n)/secs)
	}
	r.add(ph.metric+"_mean", "µs", a.h.mean()/1e3)
	r.add(ph.metric+"_p99", "µs", a.h.quantile(0.99)/1e3)
	if t.flushes != nil && a.h.n > 0 {
		r.add("dev_flushes", "per op", float64(a.flushes)/float64(a.h.n))
	}
	if t.checkpoints != nil {
		r.add("checkpoints", "/s", float64(a.checkpoints)/secs)
	}
	return r
}

// fsyncThreads is the phase that overwrites and fsyncs a 1 MiB file per
// thread (writeFsync's files, opened once for every turn).
func fsyncThreads(threads int) func(Config, imageTarget) (fsyncTurn, func(), error) {
	return func(cfg Config, t imageTarget) (fsyncTurn, func(), error) {
		names := make([]string, threads)
		for i := range names {
			names[i] = fmt.Sprintf("fsync-%d-%d", threads, i)
		}
		fw, err := openFsyncWriters(cfg, t, names, "fsync")
		if err != nil {
			return nil, nil, err
		}
		return fw.run, fw.close, nil
	}
}

// openCreateFsync is the phase that creates a file, writes 4 KiB to it,
// fsyncs and closes it, over and over: each fsync commits a new inode, its
// entry and a newly mapped block. Names go on from turn to turn.
func openCreateFsync(cfg Config, t imageTarget) (fsyncTurn, func(), error) {
	buf := fillPattern(cfg.Seed+1, pageSize)
	n := 0
	turn := func(ctx context.Context, d time.Duration, p Progress) (hist, timing, error) {
		var h hist
		var lerr error
		tm := timed(ctx, 0, d, p, 1, func(_ int, run *run) {
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
		return h, tm, lerr
	}
	return turn, func() {}, nil
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

func (t imageTarget) checkpointCount() int64 {
	if t.checkpoints == nil {
		return 0
	}
	return t.checkpoints.Load()
}

// addFlushes adds the device flushes per operation of an image row.
func (t imageTarget) addFlushes(r *Result, before int64, ops uint64) {
	if t.flushes != nil && ops > 0 {
		r.add("dev_flushes", "per op", float64(t.flushes.Load()-before)/float64(ops))
	}
}
