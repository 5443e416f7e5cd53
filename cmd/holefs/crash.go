package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/holefs/holefs/internal/crash"
)

// crashCmd records random workloads on images through a recording device
// and checks every crash state of them; with --faults, it also injects a
// device error at every device operation of workloads. Exit status 1 on
// any violation.
func crashCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("crash", flag.ContinueOnError)
	states := fl.Int("states", 10000, "check at least this many crash states (0: one workload)")
	seed := fl.Uint64("seed", 1, "seed of the first workload; the next ones use seed+1, seed+2, ...")
	ops := fl.Int("ops", 120, "operations per workload")
	subsets := fl.Int("subsets", 6, "subsets of the unflushed writes per crash point, besides none and all")
	blocks := fl.Int64("blocks", 48, "image size in 4 KiB blocks (small: freed blocks are reused at once)")
	sums := fl.Bool("data-checksums", false, "make the images with data checksums (every block written out of place)")
	workers := fl.Int("workers", 0, "crash states checked in parallel (default GOMAXPROCS)")
	dir := fl.String("dir", defaultScratch(), "directory for the images (tmpfs is fastest: every commit fsyncs)")
	faults := fl.Int("faults", 0, "then, for this many workloads, fail each device operation in turn with EIO\n"+
		"(that one only, and that one and all after it)")
	maxViol := fl.Int("max-violations", 20, "violations to print (all are counted)")
	quiet := fl.Bool("quiet", false, "no progress output")
	backend := fl.String("backend", "extentfs", "image kind: extentfs; ext2 (indirect blocks written out copy on write at each commit;\n"+
		"no fallocate in the workload; no --data-checksums); or zonefs (zoned images: appends, resets, finishes and\n"+
		"conventional writes, every crash state's write pointers checked; --blocks, --data-checksums and --faults do not apply)")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs crash [flags]\n\n"+
			"Runs random workloads (writes, overwrites, O_DIRECT, punch, zero range, truncate,\n"+
			"fallocate, unlink of open files, renames, fsync of files and directories) on small\n"+
			"images through a device that records every write and flush, and for every flush\n"+
			"boundary and commit rebuilds the images a crash could leave (the metadata then\n"+
			"committed, the data flushed, and subsets of the writes not yet flushed), mounts\n"+
			"each, runs fsck and checks it against a model of what every fsync made durable:\n"+
			"lost, stale (punched), foreign or corrupt data is a violation (exit status 1).\n\n"+
			"With --backend zonefs it does the same on zoned images (direct appends, resets,\n"+
			"finishes, conventional-zone writes, fsyncs): the data and the zone state are\n"+
			"recorded in one log, and every recovered write pointer must have the data written\n"+
			"below it, every fsynced append and returned reset must be there.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	if err := parseNone(fl, args, stdout, stderr); err != nil {
		return err
	}
	if *backend != "extentfs" && *backend != "ext2" && *backend != "zonefs" {
		fmt.Fprintf(stderr, "holefs crash: --backend %q: want extentfs, ext2 or zonefs\n", *backend)
		return errUsage
	}
	ext2 := *backend == "ext2"
	if *backend == "zonefs" && (*faults > 0 || *sums) {
		fmt.Fprintf(stderr, "holefs crash: --faults and --data-checksums are for extentfs images, not zonefs\n")
		return errUsage
	}
	if *states < 0 || *ops <= 0 || *subsets < 0 || *blocks < 16 || *workers < 0 || *faults < 0 || *maxViol <= 0 {
		fmt.Fprintf(stderr, "holefs crash: --states, --subsets, --workers and --faults must not be negative, "+
			"--ops and --max-violations must be positive, --blocks at least 16\n")
		return errUsage
	}
	if ext2 && *sums {
		fmt.Fprintf(stderr, "holefs crash: --backend ext2 and --data-checksums exclude each other: ext2 images have no data checksums\n")
		return errUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := crash.Config{Seed: *seed, Ops: *ops, Subsets: *subsets, States: *states, Blocks: *blocks,
		DataChecksums: *sums, Ext2: ext2, Workers: *workers, Dir: *dir, MaxViolations: *maxViol, Backend: *backend}
	var prog *crashProgress
	var onProgress func(crash.Progress)
	if !*quiet {
		prog = newCrashProgress(stderr, *states)
		onProgress = prog.update
	}
	rep, err := crash.Run(ctx, cfg, onProgress)
	if prog != nil {
		prog.finish()
	}
	if rep == nil {
		return err
	}
	crash.FormatReport(stdout, rep)
	if err != nil {
		return err // interrupted: the report covers what was checked
	}
	violations := rep.Violations

	for i := range *faults * 2 {
		fcfg := crash.FaultConfig{Seed: *seed + uint64(i/2), Ops: *ops, Blocks: *blocks, Transient: i%2 == 1,
			DataChecksums: *sums, Ext2: ext2, Dir: *dir}
		var fprog func(done, total int)
		if !*quiet {
			fprog = func(done, total int) {
				if done%50 == 0 || done == total {
					fmt.Fprintf(stderr, "crash: faults, seed %d, transient %v: run %d of %d\n", fcfg.Seed, fcfg.Transient, done, total)
				}
			}
		}
		frep, err := crash.RunFaults(ctx, fcfg, fprog)
		if frep == nil {
			return err
		}
		crash.FormatFaultReport(stdout, frep, *maxViol)
		if err != nil {
			return err
		}
		violations += len(frep.Violations)
	}
	if violations > 0 {
		return fmt.Errorf("%d violations", violations)
	}
	return nil
}

// defaultScratch is /dev/shm when it exists, else the temporary directory.
func defaultScratch() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// crashProgress shows a run's progress on stderr: a bar on a terminal, a
// line every few seconds otherwise.
type crashProgress struct {
	w      io.Writer
	target int
	bar    *progressbar.ProgressBar
	last   time.Duration
}

func newCrashProgress(w io.Writer, target int) *crashProgress {
	p := &crashProgress{w: w, target: target}
	if target > 0 {
		p.bar = termBar(w, "crash states", int64(target), progressbar.OptionSetPredictTime(true), progressbar.OptionShowCount())
	}
	return p
}

// update is called by crash.Run after every state, from its workers.
func (p *crashProgress) update(s crash.Progress) {
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%d workloads, %d violations", s.Workloads, s.Violations))
		_ = p.bar.Set64(int64(min(s.States, p.target)))
		return
	}
	if s.Elapsed-p.last >= 2*time.Second {
		p.last = s.Elapsed
		fmt.Fprintf(p.w, "crash: %s: %d states checked (%.0f/s), %d workloads, %d violations\n",
			s.Elapsed.Round(time.Second), s.States, float64(s.States)/s.Elapsed.Seconds(), s.Workloads, s.Violations)
	}
}

func (p *crashProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
