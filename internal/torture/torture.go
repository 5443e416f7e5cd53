// Package torture is holefs's random, concurrent counterpart of
// internal/repro: workers hammer one in-process filesystem with every fill
// path (buffered reads, faults on mapped views, readahead, fadvise and
// madvise WILLNEED), every block remover (punch, zero range, collapse,
// insert, truncate), writers of every kind, fsync, copy_file_range, cache
// pressure and a neighbour that keeps allocating new files so freed blocks
// are reused at once; a checker verifies every block every reader gets
// back against a history model and reports stale data, foreign data, torn
// blocks and lost writes.
//
// Every block written carries a signature (file id, the block offset it
// was written for, a generation, a checksum; see SignBlock), and the
// model (see model.go) knows, for each block, which values a read that ran
// between two points of a global sequence clock may return. Under
// LockNone the race the invalidate lock closes shows up within seconds;
// under LockInvalidate and LockRWSem a run must find nothing.
//
// With Config.Target the same workers run real system calls on files in a
// directory (target.go), which tortures the filesystem it is on: the
// holefs FUSE mount, or a kernel filesystem, a standalone detector for
// this class of bug (there, collapse and insert run alone: see targetFS).
// The workers see either through the small interface of fsys.go.
package torture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// Worker kinds, the keys of Config.Workers.
const (
	WorkRead      = "read"      // buffered ReadAt, random and sequential (sync and async readahead)
	WorkFault     = "fault"     // reads through read-only mapped views it maps and unmaps
	WorkMapWrite  = "mapwrite"  // writes whole signed blocks through writable views, msync
	WorkReadahead = "readahead" // readahead(2)
	WorkFadvise   = "fadvise"   // FADV_WILLNEED, FADV_DONTNEED and the hints
	WorkMadvise   = "madvise"   // MADV_WILLNEED, MADV_DONTNEED and the hints on its views
	WorkWrite     = "write"     // buffered WriteAt of whole signed blocks
	WorkDirect    = "direct"    // O_DIRECT reads and writes (extentfs only)
	WorkRemove    = "remove"    // punch, zero range, collapse, insert, truncate down and up
	WorkFsync     = "fsync"     // File.Sync, sometimes FS.Sync
	WorkCopy      = "copy"      // copy_file_range within a file
	WorkNeighbour = "neighbour" // creates, writes, verifies and deletes other files constantly
	WorkClean     = "clean"     // runs the log-structured backend's cleaner, which moves live blocks (logfs only)
	// WorkVerify reads through the page cache like WorkRead, but never
	// while a remover runs on the file (the torture serializes them), so
	// its own fills cannot race: it checks what the other fill paths left
	// in the cache. Readahead, fadvise and madvise return no data; this is
	// how a run with only one of them as racing fill path sees the result.
	WorkVerify = "verify"
)

// WorkerKinds lists every worker kind.
var WorkerKinds = []string{WorkRead, WorkFault, WorkMapWrite, WorkReadahead, WorkFadvise, WorkMadvise,
	WorkWrite, WorkDirect, WorkRemove, WorkFsync, WorkCopy, WorkNeighbour, WorkVerify, WorkClean}

// FillPaths are the worker kinds that race page-cache fills with removers.
var FillPaths = []string{WorkRead, WorkFault, WorkReadahead, WorkFadvise, WorkMadvise}

// DefaultWorkers returns the default number of goroutines per worker kind.
func DefaultWorkers() map[string]int {
	return map[string]int{
		WorkRead: 2, WorkFault: 1, WorkMapWrite: 1, WorkReadahead: 1, WorkFadvise: 1, WorkMadvise: 1,
		WorkWrite: 2, WorkDirect: 1, WorkRemove: 2, WorkFsync: 1, WorkCopy: 1, WorkNeighbour: 1, WorkVerify: 1,
		WorkClean: 1,
	}
}

// Config describes a torture run. Zero fields take the defaults noted.
type Config struct {
	// Target, if set, is a directory: the run uses real system calls on
	// files in a fresh subdirectory of it (holefs-torture-<seed>-<pid>,
	// removed at the end) instead of an in-process holefs filesystem, so
	// it tortures whatever filesystem the directory is on (see
	// targetFS). Backend, Mode, CacheBytes, Latency, RemoveDelay,
	// FillDelay and EOFDelay must then be left zero.
	Target string
	// Backend is holefs.BackendExtent (default), holefs.BackendMemory,
	// holefs.BackendLog, holefs.BackendExt2, holefs.BackendPassthrough or
	// holefs.BackendZonefs (zonefs.go: the files are sequential zones,
	// written by direct appends and removed by zone resets).
	Backend string
	// BackingDir is where a passthrough run keeps its backing directory
	// (a fresh subdirectory, removed at the end); default os.TempDir.
	// After the run the backing files are read directly and through the
	// filesystem opened again on them.
	BackingDir string
	// Image runs on a durable image (extentfs or ext2) in a temporary directory,
	// committed every few milliseconds so that commits and the freed-block
	// quarantine race the workers; after the run the image is closed,
	// reopened, and every file checked again.
	Image bool
	// DAX runs the in-process extentfs or ext2 filesystem in DAX mode
	// (holefs.Options.DAX): reads and faults address the device's memory,
	// and readahead, fadvise and madvise have nothing to fill.
	DAX bool
	// Mode is the filesystem's lock mode.
	Mode holefs.LockMode
	// FileLock gives the filesystem the per-file invalidate lock
	// (holefs.Options.FileInvalidateLock) instead of the range lock.
	FileLock bool
	// Duration bounds the run's time; Ops bounds its operations (each
	// filesystem call is one). The run stops at the first bound reached;
	// at least one must be set.
	Duration time.Duration
	Ops      int64
	// Seed seeds every worker's random source. The interleaving of
	// goroutines is not reproducible, so a seed reproduces the mix of
	// operations, not the exact run.
	Seed uint64
	// Files is the number of files the workers share (default 4), each
	// FileBlocks 4 KiB blocks long (default 32).
	Files      int
	FileBlocks int
	// CacheBytes bounds the page cache (default 512 KiB: small, so that
	// eviction and refill never stop; the engine's minimum is 256 KiB).
	CacheBytes int64
	// Latency delays every device I/O (extentfs), which widens the window
	// between a fill's block lookup and its read.
	Latency time.Duration
	// RemoveDelay, if positive, sleeps in every block-removing operation
	// between its page-cache truncation and its block-map change
	// (Hooks.AfterTruncatePages), and FillDelay in every fill between
	// its block lookup and its read (Hooks.AfterMapRead): knobs that
	// widen the race windows. Under a correct lock mode they only slow
	// the run down.
	RemoveDelay, FillDelay time.Duration
	// EOFDelay, if positive, sleeps in every fill between its end-of-file
	// check and the creation of its pages (Hooks.BeforeFill): the window a
	// truncate must hit, since it changes the size before it truncates
	// the page cache (ext2, whose one remover is truncate). Like the other
	// delays it only slows a correct lock mode down.
	EOFDelay time.Duration
	// Workers is the number of goroutines per worker kind (WorkerKinds);
	// nil means DefaultWorkers. Kinds not in the map get none.
	Workers map[string]int
	// StopOnFirst stops the run at the first violation (of one of
	// StopKinds, if set).
	StopOnFirst bool
	StopKinds   []string
	// MaxViolations caps the violations kept in the report (default 20);
	// all are counted.
	MaxViolations int
	// StrictDirect makes O_DIRECT writes supersede older data for readers
	// through the page cache too, that is, treats a cached page that
	// survived a direct write as a violation (see model.go).
	StrictDirect bool
}

// Defaults returns c with the zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.Backend == "" && c.Target == "" {
		c.Backend = holefs.BackendExtent
	}
	if c.Files == 0 {
		c.Files = 4
	}
	if c.FileBlocks == 0 {
		c.FileBlocks = 32
	}
	if c.CacheBytes == 0 && c.Target == "" {
		c.CacheBytes = 512 << 10
	}
	if c.Workers == nil {
		c.Workers = DefaultWorkers()
	}
	if c.MaxViolations == 0 {
		c.MaxViolations = 20
	}
	return c
}

// Validate reports what is wrong with a configuration (after Defaults).
func (c Config) Validate() error {
	var errs []error
	if c.Target != "" {
		if c.Backend != "" || c.Mode != 0 || c.FileLock || c.CacheBytes != 0 || c.Latency != 0 || c.RemoveDelay != 0 || c.FillDelay != 0 || c.EOFDelay != 0 {
			errs = append(errs, errors.New("a target directory excludes backend, lock mode, the per-file invalidate lock, cache size, latency and delays (they configure the in-process filesystem)"))
		}
		if err := checkTarget(c.Target); err != nil {
			errs = append(errs, fmt.Errorf("target: %w", err))
		}
	} else if c.Backend != holefs.BackendExtent && c.Backend != holefs.BackendMemory && c.Backend != holefs.BackendLog &&
		c.Backend != holefs.BackendExt2 && c.Backend != holefs.BackendPassthrough && c.Backend != holefs.BackendZonefs {
		errs = append(errs, fmt.Errorf("unknown backend %q (want %s, %s, %s, %s, %s or %s)", c.Backend,
			holefs.BackendExtent, holefs.BackendMemory, holefs.BackendLog, holefs.BackendExt2, holefs.BackendPassthrough, holefs.BackendZonefs))
	}
	if c.BackingDir != "" && c.Backend != holefs.BackendPassthrough {
		errs = append(errs, fmt.Errorf("a backing directory needs the %s backend", holefs.BackendPassthrough))
	}
	if c.Image && (c.Target != "" || (c.Backend != holefs.BackendExtent && c.Backend != holefs.BackendExt2)) {
		errs = append(errs, fmt.Errorf("an image needs the %s or %s backend and no target", holefs.BackendExtent, holefs.BackendExt2))
	}
	if c.DAX && (c.Target != "" || c.Image || (c.Backend != holefs.BackendExtent && c.Backend != holefs.BackendExt2) || c.Latency != 0) {
		errs = append(errs, fmt.Errorf("DAX needs the %s or %s backend on its memory device: no target, image or latency", holefs.BackendExtent, holefs.BackendExt2))
	}
	if !slices.Contains(holefs.LockModes, c.Mode) {
		errs = append(errs, fmt.Errorf("unknown lock mode %v", c.Mode))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("negative duration %v", c.Duration))
	}
	if c.Ops < 0 {
		errs = append(errs, fmt.Errorf("negative op count %d", c.Ops))
	}
	if c.Duration == 0 && c.Ops == 0 {
		errs = append(errs, errors.New("unbounded run: set a duration or an op count"))
	}
	if c.Files < 1 || c.Files > 1024 {
		errs = append(errs, fmt.Errorf("files %d out of range [1, 1024]", c.Files))
	}
	if c.FileBlocks < 4 || c.FileBlocks > 1<<16 {
		errs = append(errs, fmt.Errorf("file blocks %d out of range [4, 65536]", c.FileBlocks))
	}
	if c.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("negative cache size %d", c.CacheBytes))
	}
	if c.Latency < 0 || c.RemoveDelay < 0 || c.FillDelay < 0 || c.EOFDelay < 0 {
		errs = append(errs, errors.New("negative latency or delay"))
	}
	if c.MaxViolations < 0 {
		errs = append(errs, fmt.Errorf("negative violation cap %d", c.MaxViolations))
	}
	total := 0
	for k, n := range c.Workers {
		if !slices.Contains(WorkerKinds, k) {
			errs = append(errs, fmt.Errorf("unknown worker kind %q (want one of %s)", k, strings.Join(WorkerKinds, ", ")))
		}
		if n < 0 || n > 256 {
			errs = append(errs, fmt.Errorf("worker count %s=%d out of range [0, 256]", k, n))
		}
		total += max(n, 0)
	}
	if total == 0 {
		errs = append(errs, errors.New("no workers"))
	}
	return errors.Join(errs...)
}

// Describe names what the run tortures: "target DIR" or "mode M, backend B".
func (c Config) Describe() string {
	if c.Target != "" {
		return "target " + c.Target
	}
	mode := c.Mode.String()
	if c.FileLock {
		mode += " (per-file invalidate lock)"
	}
	if c.Image {
		return fmt.Sprintf("mode %s, backend %s on an image", mode, c.Backend)
	}
	if c.DAX {
		return fmt.Sprintf("mode %s, backend %s in DAX mode", mode, c.Backend)
	}
	return fmt.Sprintf("mode %s, backend %s", mode, c.Backend)
}

// Stats is a snapshot of a running torture, for progress reports.
type Stats struct {
	Elapsed        time.Duration
	Ops            int64
	Violations     int64
	ByKind         map[string]int64 // violations per kind
	BlocksVerified int64
}

// Report is the outcome of a run.
type Report struct {
	Config         Config // with defaults applied
	Seed           uint64
	Elapsed        time.Duration
	Ops            int64            // filesystem calls
	OpsByKind      map[string]int64 // by operation ("punch", "fault", ...)
	WorkerOps      map[string]int64 // by worker kind
	Unsupported    map[string]int64 // operations the backend refused with EOPNOTSUPP or EINVAL (skipped)
	BlocksVerified int64
	// ViolationCount counts every violation; Violations keeps the first
	// Config.MaxViolations.
	ViolationCount int64
	Violations     []Violation
	// FirstViolation is when the first violation was found (0: none), and
	// FirstByKind when the first of each kind was.
	FirstViolation time.Duration
	FirstByKind    map[string]time.Duration
	ByKind         map[string]int64 // violations per kind
	// ModelSummaries counts histories too long for the model, summarized
	// as "any block of the file" (a loss of precision, never of soundness).
	ModelSummaries int64
	// TornBlocks counts blocks a target's reads returned torn: a byte-wise
	// mix of values the model allows (see fileModel.torn); not violations.
	TornBlocks int64
	// Notes say what the run could not do (a worker disabled).
	Notes []string
	// Cache is the holefs page cache's counters (zero with a Target).
	Cache CacheStats
}

// CacheStats are the page cache's counters at the end of the run.
type CacheStats struct {
	Hits, Misses, FillPages, ReadaheadPages, Evictions, WritebackPages int64
}

// Summary is the one-line outcome of the run.
func (r *Report) Summary() string {
	secs := r.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.Ops) / secs
	}
	return fmt.Sprintf("torture: %d ops in %s (%.0f ops/s), %d violations, seed %d",
		r.Ops, r.Elapsed.Round(10*time.Millisecond), rate, r.ViolationCount, r.Seed)
}

// opNames are the operations counted in Report.OpsByKind.
var opNames = []string{
	"read", "fault", "mmap", "munmap", "mapwrite", "msync", "readahead",
	"fadvise-willneed", "fadvise-dontneed", "fadvise-hint",
	"madvise-willneed", "madvise-dontneed", "madvise-hint",
	"write", "direct-read", "direct-write",
	"punch", "zero", "collapse", "insert", "truncate-down", "truncate-up",
	"fsync", "syncfs", "copy", "clean",
	"nb-create", "nb-write", "nb-direct-write", "nb-read", "nb-direct-read", "nb-fsync", "nb-remove",
	"verify-read", "final-read",
	"append", "reset", "finish", // zonefs
}

var opIndex = func() map[string]int {
	m := map[string]int{}
	for i, n := range opNames {
		m[n] = i
	}
	return m
}()

// victim is one of the shared files.
type victim struct {
	fm   *fileModel
	name string
	// gate keeps verify readers and removers apart (WorkVerify).
	gate sync.RWMutex
	// dio, on targets only, keeps O_DIRECT reads and writes and stores
	// through mappings of the file apart. Linux does not serialize direct
	// I/O with mapped writes: a page_mkwrite between a direct I/O's flush
	// of the page cache and its block mapping makes ext4 (iomap) fail the
	// direct I/O with EIO ("Direct I/O collision with buffered writes!"),
	// and a page re-dirtied before a direct write's page invalidation
	// makes the kernel log "Page cache invalidation failure on direct
	// I/O" and set EIO on the file's writeback error, which the next
	// fsync of every descriptor reports. Both are documented misuses, not
	// the bugs the torture hunts.
	dio sync.Mutex
}

// dioLock takes the file's dio lock on targets and returns its unlock.
func (t *torture) dioLock(v *victim) func() {
	if t.cfg.Target == "" {
		return func() {}
	}
	v.dio.Lock()
	return v.dio.Unlock
}

// torture is one run.
type torture struct {
	cfg  Config
	fsys fileSystem
	lib  *holefs.FS // the in-process filesystem (nil with a Target)
	opts holefs.Options
	// imageDir holds an image run's image; removed at the end.
	imageDir string
	// backingDir is a passthrough run's backing directory; removed at the
	// end.
	backingDir string
	model      *model
	// directOK: the filesystem takes O_DIRECT (extentfs; a target whose
	// O_DIRECT open did not fail with EINVAL).
	directOK bool
	notes    []string
	files    []*victim
	start    time.Time

	nextID atomic.Uint64 // file ids

	stopped  atomic.Bool
	panicked atomic.Bool // a worker recovered a panic: the FS may be broken
	ops      atomic.Int64
	verified atomic.Int64
	opCount  []atomic.Int64 // by opNames
	unsupp   []atomic.Int64 // by opNames

	vmu        sync.Mutex
	violations []Violation              // +checklocks:vmu
	byKind     map[string]int64         // +checklocks:vmu
	firstKind  map[string]time.Duration // +checklocks:vmu
	nviol      atomic.Int64
	firstViol  atomic.Int64 // nanoseconds since start
}

// Run runs a torture and reports what it found. progress, if not nil, is
// called about ten times a second from Run's goroutine. Run returns an
// error only if the run could not be set up or did not finish (workers
// stuck: a deadlock, reported with the goroutines' stacks); violations
// are in the Report.
func Run(ctx context.Context, cfg Config, progress func(Stats)) (Report, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	t := &torture{cfg: cfg, model: newModel(cfg.StrictDirect),
		byKind: map[string]int64{}, firstKind: map[string]time.Duration{},
		opCount: make([]atomic.Int64, len(opNames)), unsupp: make([]atomic.Int64, len(opNames))}
	if cfg.Target != "" {
		tfs, err := newTargetFS(cfg.Target, cfg.Seed)
		if err != nil {
			return Report{}, fmt.Errorf("torture target: %w", err)
		}
		t.fsys = tfs
		t.model.torn = true
	} else if err := t.openLib(); err != nil {
		return Report{}, err
	}
	fsys := t.fsys
	if err := t.setup(); err != nil {
		_ = fsys.Close()
		return Report{}, fmt.Errorf("torture setup: %w", err)
	}
	return t.run(ctx, progress)
}

// openLib opens the in-process holefs filesystem of the run.
func (t *torture) openLib() error {
	cfg := t.cfg
	opts := holefs.Options{Backend: cfg.Backend, CacheBytes: cfg.CacheBytes, LockMode: cfg.Mode, FileInvalidateLock: cfg.FileLock,
		Latency: cfg.Latency, SizeBytes: 1 << 30, DAX: cfg.DAX}
	if cfg.RemoveDelay > 0 || cfg.FillDelay > 0 || cfg.EOFDelay > 0 {
		h := &holefs.Hooks{}
		if d := cfg.RemoveDelay; d > 0 {
			h.AfterTruncatePages = func(_ uint64, op string) {
				if op != "evict" {
					time.Sleep(d)
				}
			}
		}
		if d := cfg.EOFDelay; d > 0 {
			h.BeforeFill = func(uint64, int64, int64) { time.Sleep(d) }
		}
		if d := cfg.FillDelay; d > 0 {
			h.AfterMapRead = func(uint64, int64, int64) { time.Sleep(d) }
		}
		opts.Hooks = h
	}
	path := ""
	if cfg.Image {
		dir, err := os.MkdirTemp("", "holefs-torture-image-")
		if err != nil {
			return err
		}
		t.imageDir, path = dir, filepath.Join(dir, "img")
		if err := holefs.Mkfs(path, holefs.MkfsOptions{SizeBytes: opts.SizeBytes, Backend: cfg.Backend}); err != nil {
			return err
		}
		opts.SizeBytes = 0
		opts.CommitInterval = imageCommitInterval
		opts.UnsafeLockNone = true // none mode must show its races here too
	}
	if cfg.Backend == holefs.BackendZonefs {
		opts.Zoned = zonedGeometry(cfg)
	}
	if cfg.Backend == holefs.BackendPassthrough {
		dir, err := os.MkdirTemp(cfg.BackingDir, "holefs-torture-backing-")
		if err != nil {
			return err
		}
		t.backingDir, opts.BackingDir = dir, dir
		opts.UnsafeLockNone = true
	}
	t.opts = opts
	// A file device is not block-atomic (blockdev.Device: concurrent I/O
	// to one block has no defined result, as on a disk): a buffered fill
	// that reads a block while a direct write rewrites it can get a mix,
	// as on Linux. The model then accepts byte mixes of allowed values.
	// Passthrough's devices are files too (pread racing pwrite).
	t.model.torn = cfg.Image || cfg.Backend == holefs.BackendPassthrough
	fsys, err := holefs.Open(path, opts)
	if err != nil {
		return err
	}
	t.lib, t.fsys = fsys, libFS{fsys}
	t.directOK = cfg.Backend != holefs.BackendMemory
	return nil
}

// run runs the workers on the set-up filesystem.
func (t *torture) run(ctx context.Context, progress func(Stats)) (Report, error) {
	cfg, fsys := t.cfg, t.fsys
	var workers []*worker
	for _, kind := range WorkerKinds {
		for i := 0; i < cfg.Workers[kind]; i++ {
			w := &worker{t: t, kind: kind, name: fmt.Sprintf("%s#%d", kind, i+1),
				r: rand.New(rand.NewPCG(cfg.Seed, uint64(len(workers))*0x9E3779B97F4A7C15+1))}
			workers = append(workers, w)
		}
	}
	t.start = time.Now()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		tm := time.NewTimer(cfg.Duration)
		defer tm.Stop()
		deadline = tm.C
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	report := func() {
		if progress != nil {
			progress(t.stats())
		}
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case <-done:
			break loop
		case <-tick.C:
			report()
			if t.stopped.Load() {
				break loop
			}
		}
	}
	t.stop()
	elapsed := time.Since(t.start)
	// Workers finish the op they are in. One stuck for long is a deadlock
	// in the engine: report it with every goroutine's stack, and leave the
	// filesystem open (closing it would block too).
	wait := stuckAfter
	if t.panicked.Load() {
		wait = 5 * time.Second // locks the panicking op held may never be released
	}
	select {
	case <-done:
	case <-time.After(wait):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.removeTarget()
		if t.panicked.Load() {
			// Expected after a panic: report it, leave the filesystem.
			return t.report(elapsed, workers), nil
		}
		t.addViolation(Violation{Kind: KindStuck, Detail: fmt.Sprintf("workers did not stop %v after the end of the run", wait)})
		return t.report(elapsed, workers), fmt.Errorf("torture: workers stuck for %v after the run ended (deadlock?); goroutines:\n%s", wait, buf)
	}
	report()
	if t.panicked.Load() {
		t.removeTarget()
		return t.report(elapsed, workers), nil
	}
	if !t.cfg.StopOnFirst || t.nviol.Load() == 0 {
		t.finalCheck()
	}
	if err := fsys.Close(); err != nil {
		t.addViolation(Violation{Kind: KindError, Detail: fmt.Sprintf("FS.Close: %v", err)})
	}
	if t.imageDir != "" {
		t.reopenCheck()
	}
	if t.backingDir != "" {
		t.backingCheck()
	}
	return t.report(elapsed, workers), nil
}

// imageCommitInterval is how often an image run commits in the background:
// often enough that hundreds of commits race the workers each second.
const imageCommitInterval = 5 * time.Millisecond

// reopenCheck reopens an image run's image after Close and checks every
// file again: what Close committed is what the workers last wrote.
func (t *torture) reopenCheck() {
	defer os.RemoveAll(t.imageDir)
	fsys, err := holefs.Open(filepath.Join(t.imageDir, "img"), t.opts)
	if err != nil {
		t.addViolation(Violation{Kind: KindError, Detail: fmt.Sprintf("reopen the image: %v", err)})
		return
	}
	t.fsys = libFS{fsys}
	t.finalCheck()
	if err := fsys.Close(); err != nil {
		t.addViolation(Violation{Kind: KindError, Detail: fmt.Sprintf("FS.Close after reopen: %v", err)})
	}
}

// backingCheck checks a passthrough run's backing files after Close: read
// directly, as any program sees them, and through the filesystem opened
// again on the directory, which loads its tree from there.
func (t *torture) backingCheck() {
	defer os.RemoveAll(t.backingDir)
	for _, v := range t.files {
		R := v.fm.beginRead()
		data, err := os.ReadFile(filepath.Join(t.backingDir, v.name))
		if err != nil {
			t.unexpected("backing", "read "+v.name, err)
			continue
		}
		t.countOp("final-read")
		t.verify(v.fm, R, readDesc{name: "final-read", worker: "backing"}, 0, data, len(data)/BlockSize)
	}
	fsys, err := holefs.Open("", t.opts)
	if err != nil {
		t.addViolation(Violation{Kind: KindError, Detail: fmt.Sprintf("reopen the backing directory: %v", err)})
		return
	}
	t.fsys = libFS{fsys}
	t.finalCheck()
	if err := fsys.Close(); err != nil {
		t.addViolation(Violation{Kind: KindError, Detail: fmt.Sprintf("FS.Close after reopen: %v", err)})
	}
}

// removeTarget removes a target's directory when the run ends without
// closing its filesystem (workers stuck or panicked): unlinking files
// that stuck workers still hold open is safe on a real filesystem.
func (t *torture) removeTarget() {
	if tfs, ok := t.fsys.(*targetFS); ok {
		_ = tfs.Close()
	}
}

// stuckAfter is how long workers may take to stop.
var stuckAfter = 60 * time.Second

func (t *torture) report(elapsed time.Duration, workers []*worker) Report {
	notes := slices.Clone(t.notes)
	if tfs, ok := t.fsys.(*targetFS); ok {
		notes = append(notes, fmt.Sprintf("%d mapped accesses past EOF faulted (SIGBUS, recovered as EFAULT)", tfs.sigbus.Load()))
	}
	r := Report{Config: t.cfg, Seed: t.cfg.Seed, Elapsed: elapsed, Ops: t.ops.Load(),
		OpsByKind: map[string]int64{}, WorkerOps: map[string]int64{}, Unsupported: map[string]int64{},
		BlocksVerified: t.verified.Load(), ViolationCount: t.nviol.Load(),
		ModelSummaries: t.model.summaries.Load(), TornBlocks: t.model.tornBlocks.Load(), Notes: notes}
	for i, n := range opNames {
		if c := t.opCount[i].Load(); c > 0 {
			r.OpsByKind[n] = c
		}
		if c := t.unsupp[i].Load(); c > 0 {
			r.Unsupported[n] = c
		}
	}
	for _, w := range workers {
		r.WorkerOps[w.kind] += w.ops.Load()
	}
	t.vmu.Lock()
	r.Violations = slices.Clone(t.violations)
	r.ByKind = maps.Clone(t.byKind)
	r.FirstByKind = maps.Clone(t.firstKind)
	t.vmu.Unlock()
	if f := t.firstViol.Load(); f > 0 {
		r.FirstViolation = time.Duration(f)
	}
	if t.lib != nil {
		cs := t.lib.CacheStats()
		r.Cache = CacheStats{Hits: cs.Hits, Misses: cs.Misses, FillPages: cs.FillPages,
			ReadaheadPages: cs.ReadaheadPages, Evictions: cs.Evictions, WritebackPages: cs.WritebackPages}
	}
	return r
}

func (t *torture) stats() Stats {
	t.vmu.Lock()
	byKind := maps.Clone(t.byKind)
	t.vmu.Unlock()
	return Stats{Elapsed: time.Since(t.start), Ops: t.ops.Load(), Violations: t.nviol.Load(),
		ByKind: byKind, BlocksVerified: t.verified.Load()}
}

func (t *torture) stop() { t.stopped.Store(true) }

// countOp counts one filesystem call and stops the run at the op bound.
func (t *torture) countOp(name string) {
	t.opCount[opIndex[name]].Add(1)
	if n := t.ops.Add(1); t.cfg.Ops > 0 && n >= t.cfg.Ops {
		t.stop()
	}
}

func (t *torture) countUnsupported(name string) { t.unsupp[opIndex[name]].Add(1) }

func (t *torture) addViolation(v Violation) {
	t.nviol.Add(1)
	var since time.Duration
	if !t.start.IsZero() {
		since = max(time.Since(t.start), 1)
		t.firstViol.CompareAndSwap(0, int64(since))
	}
	t.vmu.Lock()
	if len(t.violations) < t.cfg.MaxViolations {
		t.violations = append(t.violations, v)
	}
	t.byKind[v.Kind]++
	if _, ok := t.firstKind[v.Kind]; !ok {
		t.firstKind[v.Kind] = since
	}
	t.vmu.Unlock()
	if t.cfg.StopOnFirst && (len(t.cfg.StopKinds) == 0 || slices.Contains(t.cfg.StopKinds, v.Kind)) {
		t.stop()
	}
}

// unexpected records an operation's unexpected error.
func (t *torture) unexpected(who, what string, err error) {
	t.addViolation(Violation{Kind: KindError, Detail: fmt.Sprintf("%s: %s: %v", who, what, err)})
}

func (t *torture) newID() uint64 { return t.nextID.Add(1) }

// setup creates the shared files, fully written with signed blocks and
// synced, with their cache dropped.
func (t *torture) setup() error {
	if t.cfg.Target != "" {
		if err := t.probeDirect(); err != nil {
			return err
		}
	}
	for i := 0; i < t.cfg.Files; i++ {
		name, flags := fmt.Sprintf("file%d", i), os.O_RDWR|os.O_CREATE|os.O_EXCL
		if t.zoned() {
			name, flags = fmt.Sprintf("seq/%d", i), os.O_RDWR|syscall.O_DIRECT
		}
		id := t.newID()
		v := &victim{name: name, fm: t.model.newFile(id, name, 2*t.cfg.FileBlocks)}
		f, err := t.fsys.OpenFile(name, flags, 0o644)
		if err != nil {
			return err
		}
		nb := int64(t.cfg.FileBlocks)
		o := v.fm.beginWrite("write", "setup", 0, nb, false)
		buf := make([]byte, nb*BlockSize)
		for b := int64(0); b < nb; b++ {
			SignBlock(buf[b*BlockSize:(b+1)*BlockSize], Sig{File: id, Off: b, Gen: o.start})
		}
		_, err = f.WriteAt(buf, 0)
		v.fm.end(o, -1, fateVoid, "")
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = f.Fadvise(0, 0, unix.FADV_DONTNEED)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		t.files = append(t.files, v)
	}
	return nil
}

// finalCheck reads every file once the workers are done: through the
// cache, again after dropping the cache (what the device holds, as far as
// the block maps say), and with O_DIRECT.
func (t *torture) finalCheck() {
	for _, v := range t.files {
		f, err := t.fsys.OpenFile(v.name, os.O_RDONLY, 0)
		if err != nil {
			t.unexpected("final", "open "+v.name, err)
			continue
		}
		buf := make([]byte, t.cfg.FileBlocks*BlockSize)
		check := func(direct bool, h file) {
			R := v.fm.beginRead()
			n, err := h.ReadAt(buf, 0)
			if err != nil && err != io.EOF {
				t.unexpected("final", "read "+v.name, err)
			}
			t.countOp("final-read")
			t.verify(v.fm, R, readDesc{name: "final-read", worker: "final", direct: direct}, 0, buf, n/BlockSize)
		}
		check(false, f)
		_ = f.Fadvise(0, 0, unix.FADV_DONTNEED)
		check(false, f)
		if t.directOK {
			if d, err := t.fsys.OpenFile(v.name, os.O_RDONLY|syscall.O_DIRECT, 0); err == nil {
				check(true, d)
				_ = d.Close()
			} else {
				t.unexpected("final", "open O_DIRECT "+v.name, err)
			}
		}
		_ = f.Close()
	}
}

// probeDirect finds out whether a target takes O_DIRECT: an open that
// fails with EINVAL (tmpfs before Linux 6.6, some FUSE mounts) disables
// direct I/O for the run, and the report says so.
func (t *torture) probeDirect() error {
	const name = "direct-probe"
	f, err := t.fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_DIRECT, 0o644)
	switch {
	case err == nil:
		t.directOK = true
		err = f.Close()
	case isErr(err, syscall.EINVAL):
		t.notes = append(t.notes, fmt.Sprintf("O_DIRECT not supported by the target (%v): direct worker and direct reads disabled", err))
		err = nil
	}
	if rerr := t.fsys.Remove(name); err == nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	return err
}

// verify checks a read's blocks and records violations.
func (t *torture) verify(fm *fileModel, R uint64, rd readDesc, pos int64, data []byte, nblocks int) {
	vs := fm.endRead(R, rd, pos, data, nblocks)
	t.verified.Add(int64(nblocks))
	for _, v := range vs {
		t.addViolation(v)
	}
}

// FormatReport writes a human-readable report: the violations with their
// histories, the ops per kind, then the summary line.
func FormatReport(w io.Writer, r *Report) {
	if r.ViolationCount > 0 {
		var kinds []string
		for k, n := range r.ByKind {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "torture: %d violations (%s; seed %d, %s); first after %v:\n",
			r.ViolationCount, strings.Join(kinds, ", "), r.Seed, r.Config.Describe(), r.FirstViolation.Round(time.Millisecond))
		for _, v := range r.Violations {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(v.String(), "\n", "\n  "))
		}
		if int64(len(r.Violations)) < r.ViolationCount {
			fmt.Fprintf(w, "  ... and %d more\n", r.ViolationCount-int64(len(r.Violations)))
		}
	}
	kinds := make([]string, 0, len(r.OpsByKind))
	for k := range r.OpsByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.OpsByKind[k]))
	}
	fmt.Fprintf(w, "ops: %s\n", strings.Join(parts, " "))
	if len(r.Unsupported) > 0 {
		var us []string
		for k, n := range r.Unsupported {
			us = append(us, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(us)
		what := r.Config.Backend
		if r.Config.Target != "" {
			what = "the target"
		}
		fmt.Fprintf(w, "skipped (not supported by %s): %s\n", what, strings.Join(us, " "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if r.Config.Target != "" {
		fmt.Fprintf(w, "blocks verified: %d (%d torn by concurrent ops, allowed); target %s (kernel page cache)\n",
			r.BlocksVerified, r.TornBlocks, r.Config.Target)
	} else {
		fmt.Fprintf(w, "blocks verified: %d; cache: %d hits, %d misses, %d pages filled, %d evicted, %d written back\n",
			r.BlocksVerified, r.Cache.Hits, r.Cache.Misses, r.Cache.FillPages, r.Cache.Evictions, r.Cache.WritebackPages)
	}
	fmt.Fprintln(w, r.Summary())
}
