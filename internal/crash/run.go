package crash

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/holefs/holefs"

	"github.com/holefs/holefs/blockdev"
)

// Config configures Run.
type Config struct {
	// Seed is the first workload's seed; workload i runs seed Seed+i.
	Seed uint64
	// Ops is the number of operations of each workload; default 120.
	Ops int
	// Subsets is how many subsets of the unflushed writes are checked at
	// each crash point besides none and all (fewer when there are not
	// that many distinct ones); default 6.
	Subsets int
	// States: run workloads until at least this many crash states were
	// checked; 0 runs one workload.
	States int
	// Blocks is the image size in 4 KiB blocks; default 48. Small, so
	// freed blocks are reused at once and allocations sometimes find
	// only quarantined space and force a commit.
	Blocks int64
	// DataChecksums makes the images with data checksums: every block is
	// then written out of place, and a block that does not match its
	// checksum reads as EIO (a violation).
	DataChecksums bool
	// Ext2 makes ext2 images instead (holefs mkfs --backend ext2): files
	// past 12 blocks have a single-indirect block, which each commit
	// writes out copy on write; the workload has no fallocate.
	Ext2 bool
	// Workers check crash states in parallel; default GOMAXPROCS.
	Workers int
	// Dir is where images are made (a directory per workload and per
	// worker, removed at the end); default os.TempDir().
	Dir string
	// MaxViolations bounds the violations kept in the report; all are
	// counted. Default 20.
	MaxViolations int
	// Backend is the image kind: "" or holefs.BackendExtent for extentfs
	// images (meta.db and a data file), holefs.BackendExt2 for ext2 images
	// (the same as Ext2), holefs.BackendZonefs for zoned
	// images (the data and zone state files of a zoned device; Blocks and
	// DataChecksums do not apply).
	Backend string
}

func (c Config) withDefaults() Config {
	if c.Ops <= 0 {
		c.Ops = 120
	}
	if c.Subsets <= 0 {
		c.Subsets = 6
	}
	if c.Blocks <= 0 {
		c.Blocks = 48
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	if c.MaxViolations <= 0 {
		c.MaxViolations = 20
	}
	return c
}

// Progress is what Run reports while it runs.
type Progress struct {
	Workloads  int // recorded so far
	States     int // crash states checked
	Violations int
	Elapsed    time.Duration
}

// Report is the result of Run.
type Report struct {
	Config     Config
	Workloads  int
	Ops        int // operations run by the workloads
	Commits    int // metadata commits recorded
	Flushes    int // device flushes recorded
	Writes     int // block writes recorded
	Points     int // crash points (log positions) enumerated
	States     int // crash states rebuilt, mounted and checked
	BadStates  int // crash states with at least one violation
	Violations int
	Kinds      map[string]int // violations by kind
	Examples   []Violation    // the first MaxViolations
	Elapsed    time.Duration
}

// checked counts one crash state checked with the violations vs, and
// reports the progress. The caller serializes it.
func (rep *Report) checked(vs []Violation, start time.Time, progress func(Progress)) {
	rep.States++
	if len(vs) > 0 {
		rep.BadStates++
	}
	for _, v := range vs {
		rep.add(v)
	}
	if progress != nil {
		progress(Progress{Workloads: rep.Workloads, States: rep.States, Violations: rep.Violations, Elapsed: time.Since(start)})
	}
}

// countLog counts the flushes and writes of a recorded workload's log.
func (rep *Report) countLog(log []blockdev.Entry) {
	for _, e := range log {
		switch e.Kind {
		case blockdev.EntryFlush:
			rep.Flushes++
		case blockdev.EntryWrite:
			rep.Writes++
		}
	}
}

func (rep *Report) add(v Violation) {
	rep.Violations++
	rep.Kinds[v.Kind]++
	if len(rep.Examples) < rep.Config.MaxViolations {
		rep.Examples = append(rep.Examples, v)
	}
}

// Run records workloads and checks their crash states until cfg.States
// are checked (or ctx is done), calling progress (if set) after every
// state.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (*Report, error) {
	cfg = cfg.withDefaults()
	switch cfg.Backend {
	case "", holefs.BackendExtent:
	case holefs.BackendExt2:
		cfg.Ext2 = true
	case holefs.BackendZonefs:
		return runZoned(ctx, cfg, progress)
	default:
		return nil, fmt.Errorf("crash: backend %q: want %s, %s or %s: %w", cfg.Backend, holefs.BackendExtent, holefs.BackendExt2, holefs.BackendZonefs, syscall.EINVAL)
	}
	start := time.Now()
	root, err := os.MkdirTemp(cfg.Dir, "holefs-crash-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	rep := &Report{Config: cfg, Kinds: map[string]int{}}
	// add is called by one worker at a time (checkAll serializes it).
	add := func(vs []Violation) { rep.checked(vs, start, progress) }
	for i := uint64(0); ctx.Err() == nil; i++ {
		seed := cfg.Seed + i
		dir := filepath.Join(root, fmt.Sprintf("w%d", seed))
		r, err := record(dir, spec{seed: seed, ops: cfg.Ops, checksums: cfg.DataChecksums, ext2: cfg.Ext2}, cfg.Blocks)
		if err != nil {
			return nil, fmt.Errorf("seed %d: record the workload: %w", seed, err)
		}
		os.RemoveAll(dir)
		rep.Workloads++
		rep.Ops += len(r.w.ops) - 1
		rep.Commits += len(r.commits) - 1
		rep.countLog(r.log)
		for _, p := range r.runtime {
			rep.add(Violation{Kind: "RUNTIME", Where: fmt.Sprintf("seed %d, while recording", seed), Detail: p})
		}
		rep.Points += len(r.crashPoints())
		if err := r.checkAll(ctx, root, cfg.Workers, cfg.Subsets, add); err != nil {
			return nil, err
		}
		if cfg.States == 0 || rep.States >= cfg.States {
			break
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, ctx.Err()
}

// checkAll checks every crash state of r on workers goroutines, each with
// its own image directory under root, and passes each state's violations
// to add, one call at a time.
func (r *recording) checkAll(ctx context.Context, root string, workers, extra int, add func([]Violation)) error {
	states := make(chan crashState)
	var wg sync.WaitGroup
	var addMu sync.Mutex
	for i := range workers {
		dir := filepath.Join(root, fmt.Sprintf("c%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		wg.Go(func() {
			for s := range states {
				vs := r.check(dir, s)
				addMu.Lock()
				add(vs)
				addMu.Unlock()
			}
		})
	}
	for _, s := range r.states(extra) {
		if ctx.Err() != nil {
			break
		}
		states <- s
	}
	close(states)
	wg.Wait()
	return nil
}

// FormatReport prints a report.
func FormatReport(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "crash: %d workloads (seeds %d to %d), %d ops, %d commits, %d flushes, %d block writes recorded\n",
		rep.Workloads, rep.Config.Seed, rep.Config.Seed+uint64(max(rep.Workloads, 1))-1, rep.Ops, rep.Commits, rep.Flushes, rep.Writes)
	fmt.Fprintf(w, "crash: %d crash points, %d crash states rebuilt, mounted and checked in %v (%.0f states/s)\n",
		rep.Points, rep.States, rep.Elapsed.Round(time.Millisecond), float64(rep.States)/max(rep.Elapsed.Seconds(), 1e-9))
	if rep.Violations == 0 {
		fmt.Fprintf(w, "crash: 0 violations\n")
		return
	}
	fmt.Fprintf(w, "crash: %d VIOLATIONS in %d crash states (%s)\n", rep.Violations, rep.BadStates, kinds(rep.Kinds))
	for _, v := range rep.Examples {
		fmt.Fprintf(w, "  %v\n", v)
	}
}
