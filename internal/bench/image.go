package bench

import (
	"context"
	"fmt"
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

func runImage(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	base, err := os.MkdirTemp(cfg.imageDir(), "holefs-bench-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	open := func(name string, noDiscard bool) (*holefs.FS, imageTarget, error) {
		path := filepath.Join(base, name)
		if err := holefs.Mkfs(path, holefs.MkfsOptions{SizeBytes: 4 << 30}); err != nil {
			return nil, imageTarget{}, err
		}
		fsys, err := holefs.Open(path, holefs.Options{CacheBytes: roundPages(cfg.CacheBytes), NoDiscard: noDiscard})
		if err != nil {
			return nil, imageTarget{}, err
		}
		return fsys, imageTarget{
			create: func(name string) (imageFile, error) { return fsys.Create(name) },
			remove: fsys.Remove, sync: fsys.Sync, data: filepath.Join(path, "data")}, nil
	}
	var images []*holefs.FS
	defer func() {
		for _, fsys := range images {
			fsys.Close()
		}
	}()
	fsys, img, err := open("img", false)
	if err != nil {
		return nil, err
	}
	images = append(images, fsys)
	img.name = "holefs image"
	// The delete phase runs on fresh images of its own, one with discard
	// and one without, so that both start from the same state.
	fsys, discard, err := open("img-discard", false)
	if err != nil {
		return nil, err
	}
	images = append(images, fsys)
	discard.name = "holefs image"
	fsys, noDiscard, err := open("img-nodiscard", true)
	if err != nil {
		return nil, err
	}
	images = append(images, fsys)
	noDiscard.name = "holefs image no-discard"
	plainDir := filepath.Join(base, "plain")
	if err := os.Mkdir(plainDir, 0o755); err != nil {
		return nil, err
	}
	plain := imageTarget{name: "plain files",
		create: func(name string) (imageFile, error) { return os.Create(filepath.Join(plainDir, name)) },
		remove: func(name string) error { return os.Remove(filepath.Join(plainDir, name)) },
		sync:   func() error { return syncDir(plainDir) }}
	type phase func(context.Context, Config, Progress, imageTarget) (Result, error)
	runs := []struct {
		t      imageTarget
		phases []phase
	}{
		{img, []phase{imageFsync, imageCreate, imageSeq}},
		{plain, []phase{imageFsync, imageCreate, imageSeq, imageDelete}},
		{discard, []phase{imageDelete}},
		{noDiscard, []phase{imageDelete}},
	}
	note := "on " + cfg.imageDir() + " (" + fsType(cfg.imageDir()) + ")"
	var rows []Result
	for _, tp := range runs {
		for _, ph := range tp.phases {
			r, err := ph(ctx, cfg, p, tp.t)
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
	for _, fsys := range images {
		if err := fsys.Close(); err != nil {
			return rows, err
		}
	}
	images = nil
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
	f, err := t.create("fsync")
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	const size = 1 << 20
	buf := fillPattern(cfg.Seed, size)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return Result{}, err
	}
	if err := f.Sync(); err != nil {
		return Result{}, err
	}
	rng := cfg.rng("image-fsync", 0)
	var h hist
	var lerr error
	tm := timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
		for !run.stopped() {
			off := rng.Int64N(size/pageSize) * pageSize
			t0 := time.Now()
			if _, lerr = f.WriteAt(buf[off:off+pageSize], off); lerr != nil {
				return
			}
			if lerr = f.Sync(); lerr != nil {
				return
			}
			h.record(time.Since(t0))
		}
	})
	if lerr != nil {
		return Result{}, lerr
	}
	r := row("image", t.name+" fsync")
	r.add("fsyncs", "ops/s", float64(h.n)/tm.seconds())
	r.add("fsync_mean", "µs", h.mean()/1e3)
	r.add("fsync_p99", "µs", h.quantile(0.99)/1e3)
	return r, nil
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
			f, err := t.create(fmt.Sprintf("small-%07d", n))
			if err != nil {
				lerr = err
				return
			}
			if _, err := f.WriteAt(buf, 0); err != nil {
				f.Close()
				lerr = err
				return
			}
			if lerr = f.Close(); lerr != nil {
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
				f, err := t.create(fmt.Sprintf("del-%02d", i))
				if err != nil {
					lerr = err
					return
				}
				if _, err := f.WriteAt(buf, 0); err != nil {
					f.Close()
					lerr = err
					return
				}
				if lerr = f.Close(); lerr != nil {
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
