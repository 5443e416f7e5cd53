package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/internal/torture"
)

// tortureCmd runs the race torture: random concurrent fills, removers,
// writers and a block-reusing neighbour on one in-memory filesystem, with
// every block read verified. Exit status 1 on any violation.
func tortureCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("torture", flag.ContinueOnError)
	duration := fl.Duration("duration", 10*time.Second, "how long to run (0: until --ops)")
	ops := fl.Int64("ops", 0, "stop after this many operations (0: until --duration)")
	seed := fl.Uint64("seed", 0, "seed of the workers' random choices (default: a random seed, printed)")
	mode := fl.String("mode", "invalidate", "lock mode: invalidate, rwsem or none")
	fileLock := fl.Bool("file-lock", false, "one invalidate lock per file (Linux's) instead of the range lock")
	backend := fl.String("backend", holefs.BackendExtent, "backend: extentfs, memfs, logfs, ext2, passthrough or zonefs\n"+
		"(zone files: direct appends, resets and finishes against every fill path)")
	backingDir := fl.String("backing-dir", "", "passthrough: make the backing directory in `DIR` (a fresh subdirectory, removed at the end;\n"+
		"default the system's temporary directory)")
	dax := fl.Bool("dax", false, "run the extentfs or ext2 filesystem in DAX mode: no page cache, reads and faults address the memory device directly")
	image := fl.Bool("image", false, "run on a durable image in a temporary directory, committed every 5 ms, and check every file again after reopening it (extentfs)")
	cache := fl.String("cache-bytes", "512KiB", "page cache size: bytes, or with a KiB, MiB or GiB suffix")
	latency := fl.Duration("latency", 0, "delay of every device I/O (extentfs)")
	files := fl.Int("files", 4, "number of shared files")
	fileBlocks := fl.Int("file-blocks", 32, "size of each shared file in 4 KiB blocks")
	workers := fl.String("workers", "", "worker counts `kind=N,...` overriding the defaults; prefix with only: to run just those\n"+
		"kinds: "+strings.Join(torture.WorkerKinds, ", "))
	stopOnFirst := fl.Bool("stop-on-first", false, "stop at the first violation")
	removeDelay := fl.Duration("remove-delay", 0, "sleep in removers between page-cache truncation and block removal (widens the race)")
	fillDelay := fl.Duration("fill-delay", 0, "sleep in fills between block lookup and read (widens the race)")
	strictDirect := fl.Bool("strict-direct", false, "flag cached pages that survive an O_DIRECT write (the engine skips mapped and pinned pages, by design)")
	maxViol := fl.Int("max-violations", 20, "violations to print (all are counted)")
	quiet := fl.Bool("quiet", false, "no progress output")
	check := fl.Bool("lockcheck", false, "turn on the lock-order checker (slow)")
	target := fl.String("target", "", "torture the filesystem of `DIR` with real system calls (pread/pwrite, mmap, fallocate,\n"+
		"fadvise, madvise, readahead, copy_file_range, O_DIRECT) on files in a fresh subdirectory\n"+
		"holefs-torture-<seed>-<pid>, removed at the end: the holefs FUSE mount or a kernel\n"+
		"filesystem; excludes --backend, --mode, --cache-bytes, --latency and the delays")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs torture [flags]\n\n"+
			"Hammers one in-memory filesystem with concurrent page-cache fills (read, fault,\n"+
			"readahead, fadvise, madvise), block removers (punch, zero, collapse, insert,\n"+
			"truncate), writers (buffered, mapped, O_DIRECT), fsync, copy_file_range and a\n"+
			"neighbour reusing freed blocks, and verifies every block read against a history\n"+
			"model: stale, foreign, torn or lost data is a violation (exit status 1).\n"+
			"With --target DIR it does the same with real system calls on files in DIR.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	if err := parseNone(fl, args, stdout, stderr); err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "holefs torture: "+format+"\n", a...)
		return errUsage
	}
	lm, err := holefs.ParseLockMode(*mode)
	if err != nil {
		return usageErr("--mode: %v", err)
	}
	if *backend != holefs.BackendExtent && *backend != holefs.BackendMemory && *backend != holefs.BackendLog &&
		*backend != holefs.BackendExt2 && *backend != holefs.BackendPassthrough && *backend != holefs.BackendZonefs {
		return usageErr("--backend: unknown backend %q (want extentfs, memfs, logfs, ext2, passthrough or zonefs)", *backend)
	}
	cacheBytes, err := parseBytes(*cache)
	if err != nil {
		return usageErr("--cache-bytes: %v", err)
	}
	seedSet, targetSet := false, false
	var engineFlags []string // flags that configure the in-process filesystem
	fl.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "seed":
			seedSet = true
		case "target":
			targetSet = true
		case "backend", "backing-dir", "mode", "cache-bytes", "latency", "remove-delay", "fill-delay":
			engineFlags = append(engineFlags, "--"+f.Name)
		}
	})
	if targetSet {
		if *target == "" {
			return usageErr("--target: empty directory name")
		}
		if len(engineFlags) > 0 {
			return usageErr("--target excludes %s (they configure the in-process filesystem)", strings.Join(engineFlags, ", "))
		}
	}
	if !seedSet {
		*seed = rand.Uint64() % 1_000_000
	}
	wk, err := parseWorkers(*workers)
	if err != nil {
		return usageErr("--workers: %v", err)
	}
	cfg := torture.Config{
		Backend: *backend, BackingDir: *backingDir, Image: *image, DAX: *dax, Mode: lm, FileLock: *fileLock, Duration: *duration, Ops: *ops, Seed: *seed,
		Files: *files, FileBlocks: *fileBlocks, CacheBytes: cacheBytes, Latency: *latency,
		RemoveDelay: *removeDelay, FillDelay: *fillDelay, Workers: wk,
		StopOnFirst: *stopOnFirst, MaxViolations: *maxViol, StrictDirect: *strictDirect,
	}
	if targetSet {
		cfg.Target, cfg.Backend, cfg.BackingDir, cfg.Mode, cfg.CacheBytes, cfg.Latency = *target, "", "", 0, 0, 0
	}
	if *files == 0 || *fileBlocks == 0 || *maxViol == 0 {
		return usageErr("--files, --file-blocks and --max-violations must be positive")
	}
	if err := cfg.Defaults().Validate(); err != nil {
		return usageErr("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if *check {
		lockcheck.Enable()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if targetSet {
		fmt.Fprintf(stdout, "torture: target %s, seed %d, %d files of %d blocks\n", *target, *seed, *files, *fileBlocks)
	} else {
		fmt.Fprintf(stdout, "torture: %s, seed %d, %d files of %d blocks, cache %d bytes\n",
			cfg.Defaults().Describe(), *seed, *files, *fileBlocks, cfg.Defaults().CacheBytes)
	}
	var prog *progress
	if !*quiet {
		prog = newProgress(stderr, cfg)
	}
	var onProgress func(torture.Stats)
	if prog != nil {
		onProgress = prog.update
	}
	rep, err := torture.Run(ctx, cfg, onProgress)
	if prog != nil {
		prog.finish()
	}
	if err != nil {
		return err
	}
	torture.FormatReport(stdout, &rep)
	if rep.ViolationCount > 0 {
		if targetSet {
			return fmt.Errorf("%d violations (seed %d, target %s)", rep.ViolationCount, rep.Seed, *target)
		}
		return fmt.Errorf("%d violations (seed %d)", rep.ViolationCount, rep.Seed)
	}
	return nil
}

// parseBytes parses "4096", "512KiB", "1MiB", "1G", ...
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			t, mult = t[:len(t)-len(u.suffix)], u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q (want bytes, or a number with KiB, MiB or GiB)", s)
	}
	return n * mult, nil
}

// parseWorkers parses "kind=N,kind=N", optionally prefixed with "only:"
// (the kinds not named get no worker); nil means the defaults.
func parseWorkers(s string) (map[string]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	m := torture.DefaultWorkers()
	if rest, ok := strings.CutPrefix(s, "only:"); ok {
		m, s = map[string]int{}, rest
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not kind=N", part)
		}
		if !slices.Contains(torture.WorkerKinds, k) {
			return nil, fmt.Errorf("unknown worker kind %q (want %s)", k, strings.Join(torture.WorkerKinds, ", "))
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 256 {
			return nil, fmt.Errorf("bad count %q for %s (want 0 to 256)", v, k)
		}
		m[k] = n
	}
	return m, nil
}

// progress shows a run's progress on stderr: a bar on a terminal, a line
// every few seconds otherwise.
type progress struct {
	w    io.Writer
	cfg  torture.Config
	bar  *progressbar.ProgressBar
	last time.Duration
}

func newProgress(w io.Writer, cfg torture.Config) *progress {
	p := &progress{w: w, cfg: cfg}
	p.bar = termBar(w, "torture", 1000, progressbar.OptionSetPredictTime(false))
	return p
}

func (p *progress) update(s torture.Stats) {
	rate := 0.0
	if secs := s.Elapsed.Seconds(); secs > 0 {
		rate = float64(s.Ops) / secs
	}
	if p.bar != nil {
		frac := 0.0
		if p.cfg.Duration > 0 {
			frac = float64(s.Elapsed) / float64(p.cfg.Duration)
		}
		if p.cfg.Ops > 0 {
			frac = max(frac, float64(s.Ops)/float64(p.cfg.Ops))
		}
		p.bar.Describe(fmt.Sprintf("%d ops, %.0f ops/s, %d violations", s.Ops, rate, s.Violations))
		_ = p.bar.Set64(int64(min(frac, 1) * 1000))
		return
	}
	if s.Elapsed-p.last >= 2*time.Second {
		p.last = s.Elapsed
		fmt.Fprintf(p.w, "torture: %s: %d ops (%.0f ops/s), %d violations, %d blocks verified\n",
			s.Elapsed.Round(time.Second), s.Ops, rate, s.Violations, s.BlocksVerified)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
