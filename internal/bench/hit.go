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
	Steps: func(cfg Config) int { return (len(holefs.LockModes) + 1) * len(hitGoroutines(cfg)) },
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

type readerAt interface {
	ReadAt([]byte, int64) (int, error)
}

func hitName(base string, g int) string { return fmt.Sprintf("%s %dg", base, g) }

func runHit(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	fileBytes := cfg.hitFileBytes()
	pages := fileBytes / pageSize
	gs := hitGoroutines(cfg)
	var rows []Result
	// The engine: order the modes so the comparison pair runs back to back.
	for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockNone, holefs.LockRWSem} {
		cache := 2*fileBytes + 4<<20
		e, err := newEnv(cfg, mode, cache, fileBytes)
		if err != nil {
			return rows, err
		}
		err = func() error {
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
			if got := e.stats().Pages; got < pages {
				return fmt.Errorf("only %d of %d pages cached after writing the file", got, pages)
			}
			e.measure(cfg)
			for _, g := range gs {
				p.Step("hit " + hitName(mode.String(), g))
				files := make([]readerAt, g)
				for i := range files {
					h, err := e.fs.OpenFile("hot", os.O_RDONLY, 0)
					if err != nil {
						return err
					}
					defer h.Close()
					files[i] = h
				}
				s0 := e.stats()
				r, err := hitRun(ctx, cfg, p, hitName(mode.String(), g), files, pages)
				if err != nil {
					return err
				}
				s1 := e.stats()
				r.add("misses", "pages", float64(s1.Misses-s0.Misses))
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
		if err != nil {
			return rows, fmt.Errorf("%s: %w", mode, err)
		}
	}

	// The reference: os.File.ReadAt on /dev/shm.
	shm, why := cfg.shmFile()
	if shm == nil {
		for range gs {
			p.Step("hit os skipped")
		}
		rows = append(rows, Result{Workload: "hit", Config: "os /dev/shm", Kind: Measured, Note: why})
	} else {
		defer removeFile(shm)
		if err := fillFile(shm, fileBytes, cfg.Seed); err != nil {
			return rows, err
		}
		for _, g := range gs {
			p.Step("hit " + hitName("os", g))
			files := make([]readerAt, g)
			for i := range files {
				h, err := os.Open(shm.Name())
				if err != nil {
					return rows, err
				}
				defer h.Close()
				files[i] = h
			}
			r, err := hitRun(ctx, cfg, p, hitName("os", g), files, pages)
			if err != nil {
				return rows, err
			}
			r.Note = "os.File.ReadAt (pread) of a file in " + filepath.Dir(shm.Name())
			rows = append(rows, r)
		}
	}

	n := gs[len(gs)-1]
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 1), hitName("none", 1), ">=", 0.97)
	if n > 1 {
		rows = addRatio(rows, "hit", "ops", hitName("invalidate", n), hitName("none", n), ">=", 0.97)
	}
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 1), hitName("os", 1), ">=", 2)
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 2), hitName("invalidate", 1), ">=", 1.8)
	rows = addRatio(rows, "hit", "ops", hitName("none", 2), hitName("none", 1), "", 0)
	rows = addRatio(rows, "hit", "ops", hitName("os", 2), hitName("os", 1), "", 0)
	rows = addRatio(rows, "hit", "ops", hitName("invalidate", 1), hitName("rwsem", 1), "", 0)
	return rows, nil
}

// hitRun reads random pages on one goroutine per file until the duration
// is up.
func hitRun(ctx context.Context, cfg Config, p Progress, name string, files []readerAt, pages int64) (Result, error) {
	var ops atomic.Int64
	var ferr firstErr
	g := len(files)
	tm := timed(ctx, min(cfg.Duration/4, time.Second), cfg.Duration, p, g, func(i int, run *run) {
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
		return Result{}, ferr.err
	}
	n := float64(ops.Load())
	r := row("hit", name)
	r.add("ops", "ops/s", n/tm.seconds())
	r.add("ns_per_op", "ns", float64(g)*float64(tm.elapsed.Nanoseconds())/max(n, 1))
	r.add("bandwidth", "MB/s", n*pageSize/tm.seconds()/1e6)
	r.add("other_cpu", "cores", tm.otherCPU)
	return r, nil
}
