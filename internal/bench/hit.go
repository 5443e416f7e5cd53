package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/holefs/holefs"
)

var hit = Workload{
	Name: "hit",
	Brief: "4 KiB random ReadAt of a fully cached file on 1, 2 and N goroutines (each its own handle), " +
		"per lock mode, against os.File.ReadAt of the same data on /dev/shm",
	Steps: func(cfg Config) int { return (len(holefs.LockModes) + 1) * len(hitGoroutines(cfg)) * hitTurns(cfg) },
	Run:   runHit,
	Plots: []PlotSpec{
		{Title: "hit: 4 KiB cached random reads", Metrics: []string{"ops"}, YLabel: "ops/s"},
	},
}

// hitGoroutines are the goroutine counts of hit: 1, 2 and N.
func hitGoroutines(cfg Config) []int {
	gs := []int{1, 2, cfg.Readers}
	slices.Sort(gs)
	return slices.Compact(gs)
}

// hitTurns is how many turns each configuration of a goroutine count gets.
// The configurations take turns, in an order reversed every turn, so that
// a drift in the machine's speed (other load, the clock, the heap) falls on
// all of them alike instead of on whichever ran first: the ratios between
// them differ by a few percent, and a single run each measured the drift.
// A turn is at least 250 ms, so short test runs get one.
func hitTurns(cfg Config) int { return int(min(max(cfg.Duration/(250*time.Millisecond), 1), 4)) }

type readerAt interface {
	ReadAt([]byte, int64) (int, error)
}

func hitName(base string, g int) string { return fmt.Sprintf("%s %dg", base, g) }

// hitTarget is one configuration of hit: a filesystem in one lock mode
// holding the cached file, or (env nil) the os.File reference.
type hitTarget struct {
	name string
	env  *env
	path string // the reference's file
}

// open returns g handles of the target's file.
func (h hitTarget) open(g int) ([]readerAt, func(), error) {
	files := make([]readerAt, 0, g)
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for range g {
		if h.env == nil {
			f, err := os.Open(h.path)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			files, closers = append(files, f), append(closers, f.Close)
			continue
		}
		f, err := h.env.fs.OpenFile("hot", os.O_RDONLY, 0)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		files, closers = append(files, f), append(closers, f.Close)
	}
	return files, closeAll, nil
}

// hitTally sums a configuration's turns.
type hitTally struct {
	ops      int64
	elapsed  time.Duration
	otherCPU float64 // cores, weighted by elapsed
	misses   int64
}

func runHit(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	fileBytes := cfg.hitFileBytes()
	pages := fileBytes / pageSize
	gs := hitGoroutines(cfg)
	turns := hitTurns(cfg)
	// Every configuration is set up first, so that they can take turns.
	var targets []hitTarget
	closeAll := func() error {
		var first error
		for _, t := range targets {
			if t.env == nil {
				continue
			}
			if err := t.env.close(); err != nil && first == nil {
				first = fmt.Errorf("%s: %w", t.name, err)
			}
		}
		return first
	}
	for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockNone, holefs.LockRWSem} {
		e, err := newEnv(cfg, mode, 2*fileBytes+4<<20, fileBytes)
		if err != nil {
			closeAll()
			return nil, err
		}
		targets = append(targets, hitTarget{name: mode.String(), env: e})
		if err := hitPrepare(e, fileBytes, cfg); err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
	}
	var rows []Result
	shm, why := cfg.shmFile()
	if shm == nil {
		for range len(gs) * turns {
			p.Step("hit os skipped")
		}
		rows = append(rows, Result{Workload: "hit", Config: "os /dev/shm", Kind: Measured, Note: why})
	} else {
		defer removeFile(shm)
		if err := fillFile(shm, fileBytes, cfg.Seed); err != nil {
			closeAll()
			return nil, err
		}
		targets = append(targets, hitTarget{name: "os", path: shm.Name()})
	}

	tally := map[string]*hitTally{}
	var err error
	for _, g := range gs {
		if err = hitTurnsOf(ctx, cfg, p, targets, g, pages, tally); err != nil {
			break
		}
	}
	if cerr := closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return rows, err
	}
	for _, t := range targets {
		for _, g := range gs {
			name := hitName(t.name, g)
			a := tally[name]
			secs := a.elapsed.Seconds()
			n := float64(a.ops)
			r := row("hit", name)
			r.add("ops", "ops/s", n/secs)
			r.add("ns_per_op", "ns", float64(g)*float64(a.elapsed.Nanoseconds())/max(n, 1))
			r.add("bandwidth", "MB/s", n*pageSize/secs/1e6)
			r.add("other_cpu", "cores", a.otherCPU/secs)
			if t.env != nil {
				r.add("misses", "pages", float64(a.misses))
			} else {
				r.Note = "os.File.ReadAt (pread) of a file in " + filepath.Dir(t.path)
			}
			rows = append(rows, r)
		}
	}

	n := gs[len(gs)-1]
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 1), hitName("none", 1), ">=", 0.97)
	if n > 1 {
		rows = addRatio(rows, "hit", "ops", hitName("invalidate", n), hitName("none", n), ">=", 0.97)
	}
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 1), hitName("os", 1), ">=", 3)
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 2), hitName("invalidate", 1), ">=", 1.8)
	rows = addRatio(rows, "hit", "ops", hitName("none", 2), hitName("none", 1), "", 0)
	rows = addRatio(rows, "hit", "ops", hitName("os", 2), hitName("os", 1), "", 0)
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 1), hitName("rwsem", 1), "", 0)
	return rows, nil
}

// hitTurnsOf measures every target on g goroutines, each for
// hitTurns(cfg) turns, and adds them up in tally.
func hitTurnsOf(ctx context.Context, cfg Config, p Progress, targets []hitTarget, g int, pages int64, tally map[string]*hitTally) error {
	turns := hitTurns(cfg)
	files := make([][]readerAt, len(targets))
	for i, t := range targets {
		f, closeFiles, err := t.open(g)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		defer closeFiles()
		files[i] = f
	}
	for turn := range turns {
		for k := range targets {
			i := k
			if turn%2 == 1 {
				i = len(targets) - 1 - k
			}
			t := targets[i]
			name := hitName(t.name, g)
			if turns > 1 {
				p.Step(fmt.Sprintf("hit %s (turn %d of %d)", name, turn+1, turns))
			} else {
				p.Step("hit " + name)
			}
			var s0 int64
			if t.env != nil {
				s0 = t.env.stats().Misses
			}
			ops, tm, err := hitRun(ctx, cfg, cfg.Duration/time.Duration(turns), p, files[i], pages)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			a := tally[name]
			if a == nil {
				a = new(hitTally)
				tally[name] = a
			}
			a.ops += ops
			a.elapsed += tm.elapsed
			a.otherCPU += tm.otherCPU * tm.seconds()
			if t.env != nil {
				a.misses += t.env.stats().Misses - s0
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// hitPrepare writes the file hit reads, checks it is all cached, and
// turns the device latency on (it must not matter: nothing misses).
func hitPrepare(e *env, fileBytes int64, cfg Config) error {
	f, err := e.fs.Create("hot")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fillFile(f, fileBytes, cfg.Seed); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if got, pages := e.stats().Pages, fileBytes/pageSize; got < pages {
		return fmt.Errorf("only %d of %d pages cached after writing the file", got, pages)
	}
	e.measure(cfg)
	return nil
}

// hitRun reads random pages on one goroutine per file for d (after a
// warm-up) and returns the reads done while measuring.
func hitRun(ctx context.Context, cfg Config, d time.Duration, p Progress, files []readerAt, pages int64) (int64, timing, error) {
	var ops atomic.Int64
	var ferr firstErr
	g := len(files)
	tm := timed(ctx, min(d/4, time.Second), d, p, g, func(i int, run *run) {
		f := files[i]
		r := cfg.rng("hit", i)
		buf := make([]byte, pageSize)
		n := int64(0)
		for !run.stopped() {
			on := run.measuring()
			for k := 0; k < 64; k++ {
				if _, err := f.ReadAt(buf, r.Int64N(pages)*pageSize); err != nil {
					ferr.set(err)
					ops.Add(n)
					return
				}
			}
			if on {
				n += 64
			}
		}
		ops.Add(n)
	})
	if ferr.err != nil {
		return 0, tm, ferr.err
	}
	return ops.Load(), tm, nil
}
