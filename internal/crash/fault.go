package crash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/meta"
)

// FaultConfig configures RunFaults.
type FaultConfig struct {
	Seed   uint64
	Ops    int   // operations of the workload; default 120
	Blocks int64 // image size in 4 KiB blocks; default 48
	// Transient fails only the chosen device operation; otherwise it and
	// every one after it fail, as on a dead disk.
	Transient bool
	// DataChecksums makes the image with data checksums.
	DataChecksums bool
	// Ext2 makes an ext2 image (see Config.Ext2).
	Ext2 bool
	Dir  string // where images are made; default os.TempDir()
}

// FaultReport is the result of RunFaults.
type FaultReport struct {
	Config    FaultConfig
	DeviceOps int64 // device operations of the run without faults
	Runs      int   // runs, one per failing device operation
	Fired     int   // runs in which the injected fault fired
	OpErrors  int   // operations that returned an error
	// Violations are the problems found, all of them.
	Violations []Violation
	Elapsed    time.Duration
}

// RunFaults runs a workload once without faults to count its device
// operations N, then once for each i in 1..N+1 with a blockdev.Faulty
// that fails the i-th device operation (read, write or flush) with EIO,
// and every one after it unless cfg.Transient. A run must not panic;
// every error an operation returns must be EIO; every fsync, sync,
// directory fsync, O_DIRECT write and Close of the filesystem during
// which the fault fired must fail, and with a permanent fault so must
// every one started after it (each needs the device). Then the image is
// reopened without faults: it must open and be fsck clean, and hold
// exactly the namespace and sizes of its last commit, with every block
// passing the crash checker's judge — everything an fsync that returned
// success made durable is there. A failed fsync or sync makes no promise
// about the writes it covered, as on Linux (after a transient fault a
// later fsync may succeed without them), nor a failed write about its
// range.
//
// meta.db is written by bbolt through its own *os.File, which a block
// device wrapper cannot reach: faults are injected into the data device
// only.
func RunFaults(ctx context.Context, cfg FaultConfig, progress func(done, total int)) (*FaultReport, error) {
	if cfg.Ops <= 0 {
		cfg.Ops = 120
	}
	if cfg.Blocks <= 0 {
		cfg.Blocks = 48
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	start := time.Now()
	root, err := os.MkdirTemp(cfg.Dir, "holefs-faults-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	template := filepath.Join(root, "template")
	if err := holefs.Mkfs(template, holefs.MkfsOptions{SizeBytes: cfg.Blocks * BlockSize, DataChecksums: cfg.DataChecksums,
		Backend: spec{ext2: cfg.Ext2}.backend(), LogBytes: logBytes}); err != nil {
		return nil, err
	}
	rep := &FaultReport{Config: cfg}
	c := spec{seed: cfg.Seed, ops: cfg.Ops, transient: cfg.Transient, checksums: cfg.DataChecksums, ext2: cfg.Ext2}
	base, err := faultRun(root, template, c)
	if err != nil {
		return nil, err
	}
	rep.DeviceOps = base.deviceOps
	rep.Violations = append(rep.Violations, base.violations...)
	total := int(base.deviceOps) + 1
	for i := 1; i <= total && ctx.Err() == nil; i++ {
		c.failAt = int64(i)
		res, err := faultRun(root, template, c)
		if err != nil {
			return nil, err
		}
		rep.Runs++
		if res.fired {
			rep.Fired++
		}
		rep.OpErrors += res.opErrors
		rep.Violations = append(rep.Violations, res.violations...)
		if progress != nil {
			progress(i, total)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, ctx.Err()
}

// FormatFaultReport prints a fault-injection report and its first max
// violations.
func FormatFaultReport(w io.Writer, rep *FaultReport, max int) {
	which := "one device op and all after it"
	if rep.Config.Transient {
		which = "one device op only"
	}
	fmt.Fprintf(w, "faults: seed %d: %d device ops; %d runs, each failing %s with EIO; "+
		"the fault fired in %d; %d ops returned errors; %d violations; %v\n",
		rep.Config.Seed, rep.DeviceOps, rep.Runs, which, rep.Fired, rep.OpErrors, len(rep.Violations), rep.Elapsed.Round(time.Millisecond))
	for i, v := range rep.Violations {
		if i == max {
			break
		}
		fmt.Fprintf(w, "  %v\n", v)
	}
}

// faultResult is one run of faultRun.
type faultResult struct {
	deviceOps  int64 // device operations attempted
	fired      bool
	opErrors   int
	violations []Violation
}

// needsDevice reports whether an op of kind k cannot succeed without the
// device: it flushes it (an fsync, even with nothing to commit), or
// writes to it directly.
func needsDevice(k opKind) bool {
	switch k {
	case opFsync, opFsyncDir, opSync, opCloseFS, opDirect:
		return true
	}
	return false
}

// spec says which workload to run: seed (ops generated operations, or
// script); for faultRun, with the data device's failAt-th operation and
// all later ones failing with EIO (0: no fault). expect, if set, accepts
// errors besides injected ones (ENOSPC on a full image).
type spec struct {
	seed   uint64
	ops    int
	script []op
	failAt int64
	expect func(error) bool
	// transient: the failAt-th device operation fails, not those after.
	transient bool
	// checksums makes the image with data checksums (every block then
	// written out of place, and checked on every read).
	checksums bool
	// ext2 makes an ext2 image (indirect blocks on the device, written
	// out copy on write at each commit); the workload has no fallocate.
	ext2 bool
	// wrap, if set, wraps the device the filesystem sees, outside the
	// recorder (a test's device that drops flushes).
	wrap func(blockdev.Device) blockdev.Device
}

// failOnce makes a Faulty's injected fault transient: the first operation
// it fails clears it.
type failOnce struct{ *blockdev.Faulty }

func (f failOnce) ReadBlocks(p []byte, block int64) error {
	return f.once(f.Faulty.ReadBlocks(p, block))
}

func (f failOnce) WriteBlocks(p []byte, block int64) error {
	return f.once(f.Faulty.WriteBlocks(p, block))
}

func (f failOnce) Flush() error { return f.once(f.Faulty.Flush()) }

func (f failOnce) once(err error) error {
	if err != nil {
		f.Clear()
	}
	return err
}

// faultRun copies the image template into root, runs c on it, then
// reopens the image and checks it.
func faultRun(root, template string, c spec) (faultResult, error) {
	seed, failAt := c.seed, c.failAt
	img := filepath.Join(root, "img")
	if err := copyImage(template, img); err != nil {
		return faultResult{}, err
	}
	var res faultResult
	where := fmt.Sprintf("seed %d, device op %d and later failing", seed, failAt)
	if c.transient {
		where = fmt.Sprintf("seed %d, device op %d failing", seed, failAt)
	}
	if failAt == 0 {
		where = fmt.Sprintf("seed %d, no fault injected", seed)
	}
	bad := func(kind, format string, a ...any) {
		res.violations = append(res.violations, Violation{Kind: kind, Where: where, Detail: fmt.Sprintf(format, a...)})
	}
	snaps := []snapshot{{before: nsState{names: map[string]uint64{}, sizes: map[uint64]int64{}}}}
	snaps[0].after = snaps[0].before
	nblocks := int64(0)
	w := newWorkload(seed, nil, 0, nil)
	w.expectErr = c.expect
	var dev *blockdev.Faulty
	// The default cache (64 MiB) keeps the flusher asleep through a run
	// (it writes back after 5 s, or with 10% of the cache dirty), so
	// every device operation is the workload's own and runs in the same
	// order each time: the fault hits the same I/O in every run with the
	// same failAt, and an op during which it fired did that I/O.
	fsys, err := holefs.Open(img, holefs.Options{CommitInterval: -1,
		// A commit that reaches BeforeCommit has flushed the data
		// device, and meta.db (no faults there) then commits: the
		// image holds the last such snapshot.
		Hooks: &holefs.Hooks{BeforeCommit: func() { snaps = append(snaps, w.snapshot()) }},
		WrapDevice: func(d blockdev.Device) blockdev.Device {
			nblocks = d.NumBlocks() - c.walBlocks()
			dev = blockdev.NewFaulty(d, blockdev.FaultOptions{})
			if failAt > 0 {
				dev.FailAfter(failAt-1, syscall.EIO)
			}
			if c.transient {
				return failOnce{dev}
			}
			return dev
		}})
	w.fired = func() bool { return failAt > 0 && dev.Ops() >= failAt }
	switch {
	case err == nil:
		w.fsys, w.budget, w.noFallocate = fsys, budget(nblocks, c.checksums || c.ext2), c.ext2
		w.run(c.ops, c.script)
	case !w.faulted():
		return res, err
	case !errors.Is(err, syscall.EIO):
		// Open commits (and so flushes) at once: it needs the device.
		bad("ERRNO", "open: %v, want EIO", err)
	}
	res.deviceOps, res.fired = dev.Ops(), w.faulted()
	for _, p := range w.runtime {
		bad("RUNTIME", "%s", p)
	}
	for seq, o := range w.ops[1:] {
		seq++
		if o.err != nil {
			res.opErrors++
			if !errors.Is(o.err, syscall.EIO) && (c.expect == nil || !c.expect(o.err)) {
				bad("ERRNO", "op %d (%v): %v, want EIO", seq, o.op, o.err)
			}
			continue
		}
		switch {
		case o.faulted && !c.transient && needsDevice(o.op.kind):
			bad("NO-ERROR", "op %d (%v) succeeded, but the device had failed before it started", seq, o.op)
		case !o.faulted && o.faultedEnd && needsDevice(o.op.kind):
			bad("NO-ERROR", "op %d (%v) succeeded, but its device I/O failed", seq, o.op)
		}
	}

	probs, err := fsck(img, false)
	if err != nil {
		bad("FSCK", "before reopening: %v", err)
	}
	for _, p := range probs {
		bad("FSCK", "before reopening: %s", p)
	}
	re, err := holefs.Open(img, holefs.Options{CommitInterval: -1, CacheBytes: cacheBytes})
	if err != nil {
		bad("OPEN", "the image does not reopen: %v", err)
		return res, nil
	}
	got, err := walk(re, w.byIno)
	if err != nil {
		bad("READ", "%v", err)
	} else {
		compare(w, &snaps[len(snaps)-1], len(w.ops)-1, func(op int) bool { return w.ops[op].end >= 0 }, got, bad)
	}
	if err := re.Close(); err != nil {
		bad("CLOSE", "%v", err)
	}
	probs, err = fsck(img, true)
	if err != nil {
		bad("FSCK", "after reopening: %v", err)
	}
	for _, p := range probs {
		bad("FSCK", "after reopening: %s", p)
	}
	return res, nil
}

// copyImage makes dst a copy of the image at src (replacing dst).
func copyImage(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for _, name := range []string{meta.DataFile, meta.MetaFile} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// walBlocks is the size of the log mkfs gives the image (the device
// holds it past the store's blocks): ext2 images have none.
func (c spec) walBlocks() int64 {
	if c.ext2 {
		return 0
	}
	return logBytes / BlockSize
}

// backend is the image's backend (holefs.MkfsOptions.Backend).
func (c spec) backend() string {
	if c.ext2 {
		return holefs.BackendExt2
	}
	return holefs.BackendExtent
}
