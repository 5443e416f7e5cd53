package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

var image = Workload{
	Name: "image",
	Brief: "a durable image against plain files on the same filesystem: 4 KiB write+fsync " +
		"(the metadata commit per fsync), small-file creates, 1 MiB sequential writes then fsync, " +
		"and deletes then sync, on an image with discard on and off",
	Steps: func(Config) int { return 9 },
	Run:   runImage,
	Plots: []PlotSpec{
		{Title: "image: fsync latency (4 KiB write + fsync)", Metrics: []string{"fsync_mean"}, YLabel: "µs"},
	},
}

// imageTarget is one side of the comparison: a holefs image or a plain
// directory, with the operations the workload needs.
type imageTarget struct {
	name   string
	create func(name string) (imageFile, error)
	remove func(name string) error
	sync   func() error
	data   string // an image's data file, whose disk usage the delete phase reports; "" for plain files
	// flushes counts the image device's flushes (the fsync workload);
	// nil for plain files.
	flushes *atomic.Int64
	// checkpoints counts the meta.db transactions of an image with a log
	// (Hooks.AfterCheckpoint; the fsync workload); nil otherwise.
	checkpoints *atomic.Int64
}

type imageFile interface {
	WriteAt([]byte, int64) (int, error)
	Sync() error
	Close() error
}

func (c Config) imageDir() string {
	if c.ImageDir != "" {
		return c.ImageDir
	}
	return os.TempDir()
}

// imageTargets are the holefs images and the plain directory one run of
// the image or fsync workload compares, under one temporary directory on
// the filesystem being measured.
type imageTargets struct {
	cfg    Config
	base   string
	images []*holefs.FS // open until close
}

func newImageTargets(cfg Config, workload string) (*imageTargets, error) {
	base, err := os.MkdirTemp(cfg.imageDir(), "holefs-bench-"+workload+"-")
	if err != nil {
		return nil, err
	}
	return &imageTargets{cfg: cfg, base: base}, nil
}

// image makes a 4 GiB image (every phase stays inside it) named name under
// the directory and opens it with opts and the configured cache.
func (s *imageTargets) image(name, label string, mkfs holefs.MkfsOptions, opts holefs.Options) (imageTarget, error) {
	path := filepath.Join(s.base, name)
	mkfs.SizeBytes = 4 << 30
	if err := holefs.Mkfs(path, mkfs); err != nil {
		return imageTarget{}, err
	}
	opts.CacheBytes = roundPages(s.cfg.CacheBytes)
	fsys, err := holefs.Open(path, opts)
	if err != nil {
		return imageTarget{}, err
	}
	s.images = append(s.images, fsys)
	return imageTarget{name: label,
		create: func(name string) (imageFile, error) { return fsys.Create(name) },
		remove: fsys.Remove, sync: fsys.Sync, data: filepath.Join(path, "data")}, nil
}

// plain makes the directory of plain files the images are compared with.
func (s *imageTargets) plain() (imageTarget, error) {
	dir := filepath.Join(s.base, "plain")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return imageTarget{}, err
	}
	return imageTarget{name: "plain files",
		create: func(name string) (imageFile, error) { return os.Create(filepath.Join(dir, name)) },
		remove: func(name string) error { return os.Remove(filepath.Join(dir, name)) },
		sync:   func() error { return syncDir(dir) }}, nil
}

// close closes the images, giving the first error: a failed final
// commit fails the run.
func (s *imageTargets) close() error {
	var first error
	for _, fsys := range s.images {
		if err := fsys.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.images = nil
	return first
}

// remove closes what an early return left open and removes the directory.
func (s *imageTargets) remove() {
	_ = s.close()
	os.RemoveAll(s.base)
}

// imagePhase measures one target and gives its row.
type imagePhase func(context.Context, Config, Progress, imageTarget) (Result, error)

// targetPhases are the phases one target runs, in order.
type targetPhases struct {
	t      imageTarget
	phases []imagePhase
}

// runPhases runs each target's phases in order, noting the filesystem
// measured on each row, then closes the images.
func (s *imageTargets) runPhases(ctx context.Context, p Progress, runs []targetPhases) ([]Result, error) {
	note := "on " + s.cfg.imageDir() + " (" + fsType(s.cfg.imageDir()) + ")"
	var rows []Result
	for _, tp := range runs {
		for _, ph := range tp.phases {
			r, err := ph(ctx, s.cfg, p, tp.t)
			if err != nil {
				return rows, fmt.Errorf("%s: %w", tp.t.name, err)
			}
			r.Note = note
			rows = append(rows, r)
			if ctx.Err() != nil {
				return rows, ctx.Err()
			}
		}
	}
	return rows, s.close()
}

func runImage(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	ts, err := newImageTargets(cfg, "image")
	if err != nil {
		return nil, err
	}
	defer ts.remove()
	img, err := ts.image("img", "holefs image", holefs.MkfsOptions{}, holefs.Options{})
	if err != nil {
		return nil, err
	}
	// The delete phase runs on fresh images of its own, one with discard
	// and one without, so that both start from the same state.
	discard, err := ts.image("img-discard", "holefs image", holefs.MkfsOptions{}, holefs.Options{})
	if err != nil {
		return nil, err
	}
	noDiscard, err := ts.image("img-nodiscard", "holefs image no-discard", holefs.MkfsOptions{}, holefs.Options{NoDiscard: true})
	if err != nil {
		return nil, err
	}
	plain, err := ts.plain()
	if err != nil {
		return nil, err
	}
	rows, err := ts.runPhases(ctx, p, []targetPhases{
		{img, []imagePhase{imageFsync, imageCreate, imageSeq}},
		{plain, []imagePhase{imageFsync, imageCreate, imageSeq, imageDelete}},
		{discard, []imagePhase{imageDelete}},
		{noDiscard, []imagePhase{imageDelete}},
	})
	if err != nil {
		return rows, err
	}
	rows = addRatio(rows, "image", "fsync_mean", "holefs image fsync", "plain files fsync", "", 0)
	rows = addRatio(rows, "image", "creates", "holefs image create", "plain files create", "", 0)
	rows = addRatio(rows, "image", "throughput", "holefs image seq write", "plain files seq write", "", 0)
	rows = addRatio(rows, "image", "deletes", "holefs image delete", "holefs image no-discard delete", "", 0)
	rows = addRatio(rows, "image", "deletes", "holefs image delete", "plain files delete", "", 0)
	return rows, nil
}

// imageFsync overwrites random 4 KiB blocks of a 1 MiB file, each
// followed by fsync: every fsync writes one page back and commits.
func imageFsync(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
	p.Step("image " + t.name + " fsync")
	return writeFsync(ctx, cfg, p, t, []string{"fsync"}, "image-fsync", row("image", t.name+" fsync"))
}

// writeFsync overwrites random 4 KiB blocks of a 1 MiB file per name, one
// goroutine a file, each write followed by fsync of the file: on an image
// every fsync writes one page back and commits, and concurrent fsyncs
// share commits. It adds the write+fsync rate and latencies to r, and an
// image's device flushes per fsync where the target counts them.
func writeFsync(ctx context.Context, cfg Config, p Progress, t imageTarget, names []string, stream string, r Result) (Result, error) {
	fw, err := openFsyncWriters(cfg, t, names, stream)
	if err != nil {
		return Result{}, err
	}
	defer fw.close()
	f0 := t.flushCount()
	h, tm, err := fw.run(ctx, cfg.Duration, p)
	if err != nil {
		return Result{}, err
	}
	r.add("fsyncs", "ops/s", float64(h.n)/tm.seconds())
	r.add("fsync_mean", "µs", h.mean()/1e3)
	r.add("fsync_p99", "µs", h.quantile(0.99)/1e3)
	t.addFlushes(&r, f0, h.n)
	return r, nil
}

// fsyncWriters are the open 1 MiB files of writeFsync, one per goroutine,
// with their random streams: the fsync workload runs them for several
// turns.
type fsyncWriters struct {
	files []imageFile
	rngs  []*rand.Rand
	buf   []byte
}

const fsyncFileBytes = 1 << 20

// openFsyncWriters creates the files named, writes them whole and fsyncs
// them, so that the writes measured overwrite mapped blocks.
func openFsyncWriters(cfg Config, t imageTarget, names []string, stream string) (*fsyncWriters, error) {
	fw := &fsyncWriters{buf: fillPattern(cfg.Seed, fsyncFileBytes)}
	for i, name := range names {
		f, err := t.create(name)
		if err != nil {
			fw.close()
			return nil, err
		}
		fw.files = append(fw.files, f)
		if _, err := f.WriteAt(fw.buf, 0); err != nil {
			fw.close()
			return nil, err
		}
		if err := f.Sync(); err != nil {
			fw.close()
			return nil, err
		}
		fw.rngs = append(fw.rngs, cfg.rng(stream, i))
	}
	return fw, nil
}

func (fw *fsyncWriters) close() {
	for _, f := range fw.files {
		f.Close()
	}
}

// run writes and fsyncs for d on a goroutine per file and returns the
// latencies of the write+fsync pairs.
func (fw *fsyncWriters) run(ctx context.Context, d time.Duration, p Progress) (hist, timing, error) {
	hs := make([]hist, len(fw.files))
	errs := make([]error, len(fw.files))
	tm := timed(ctx, 0, d, p, len(fw.files), func(g int, run *run) {
		rng, f := fw.rngs[g], fw.files[g]
		for !run.stopped() {
			off := rng.Int64N(fsyncFileBytes/pageSize) * pageSize
			t0 := time.Now()
			if _, errs[g] = f.WriteAt(fw.buf[off:off+pageSize], off); errs[g] != nil {
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
			return hist{}, tm, errs[g]
		}
		h.merge(&hs[g])
	}
	return h, tm, nil
}

// createWrite creates name, writes buf to it, fsyncs it with sync set,
// and closes it.
func createWrite(t imageTarget, name string, buf []byte, sync bool) error {
	f, err := t.create(name)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// imageCreate creates, writes 4 KiB to and closes small files, with one
// sync of everything at the end (included in the time).
func imageCreate(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
	p.Step("image " + t.name + " create")
	buf := fillPattern(cfg.Seed+1, pageSize)
	var n int
	var lerr error
	tm := timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
		for !run.stopped() {
			if lerr = createWrite(t, fmt.Sprintf("small-%07d", n), buf, false); lerr != nil {
				return
			}
			n++
		}
		lerr = t.sync()
	})
	if lerr != nil {
		return Result{}, lerr
	}
	r := row("image", t.name+" create")
	r.add("creates", "files/s", float64(n)/tm.seconds())
	return r, nil
}

// imageSeq writes a file front to back in 1 MiB writes, then fsyncs
// (included in the time).
func imageSeq(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
	p.Step("image " + t.name + " seq write")
	f, err := t.create("seq")
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	buf := fillPattern(cfg.Seed+2, 1<<20)
	const limit = 2 << 30 // stays inside the 4 GiB image
	var off int64
	var lerr error
	tm := timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
		for !run.stopped() && off < limit {
			if _, lerr = f.WriteAt(buf, off); lerr != nil {
				return
			}
			off += int64(len(buf))
		}
		lerr = f.Sync()
	})
	if lerr != nil {
		return Result{}, lerr
	}
	r := row("image", t.name+" seq write")
	r.add("throughput", "MB/s", float64(off)/tm.seconds()/1e6)
	return r, nil
}

// imageDelete creates 64 files of 64 KiB and syncs, then removes them and
// syncs again, over and over; the removal and its sync are timed. On an
// image that sync is the commit that frees the blocks, which with discard
// punches them out of the data file; the data file's disk usage after the
// phase shows whether the space went back.
func imageDelete(ctx context.Context, cfg Config, p Progress, t imageTarget) (Result, error) {
	p.Step("image " + t.name + " delete")
	const batch, size = 64, 64 << 10
	buf := fillPattern(cfg.Seed+3, size)
	// The earlier phases leave gigabytes for the host to write back; the
	// commits timed here would wait behind that (ext4 orders data before
	// its journal commits) in whichever target runs first.
	unix.Sync()
	var h hist
	var lerr error
	timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
		for !run.stopped() {
			for i := range batch {
				if lerr = createWrite(t, fmt.Sprintf("del-%02d", i), buf, false); lerr != nil {
					return
				}
			}
			if lerr = t.sync(); lerr != nil {
				return
			}
			t0 := time.Now()
			for i := range batch {
				if lerr = t.remove(fmt.Sprintf("del-%02d", i)); lerr != nil {
					return
				}
			}
			if lerr = t.sync(); lerr != nil {
				return
			}
			h.record(time.Since(t0))
		}
	})
	if lerr != nil {
		return Result{}, lerr
	}
	r := row("image", t.name+" delete")
	if h.n > 0 {
		r.add("deletes", "files/s", batch/(h.mean()/1e9))
		r.add("delete_sync_mean", "ms", h.mean()/1e6)
	}
	if t.data != "" {
		var st unix.Stat_t
		if err := unix.Stat(t.data, &st); err != nil {
			return Result{}, err
		}
		r.add("data_disk", "MiB", float64(st.Blocks*512)/(1<<20))
	}
	return r, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fsType names the filesystem holding dir, for the notes: a durable image
// on tmpfs measures the engine, on a disk filesystem the disk.
func fsType(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown filesystem"
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("filesystem magic %#x", uint32(st.Type))
}
