package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

var seq = Workload{
	Name: "seq",
	Brief: "sequential 128 KiB writes (then fsync) and reads of a file twice the cache: " +
		"writeback clustering and readahead, against the same through a file on /dev/shm",
	Steps: func(Config) int { return 4 },
	Run:   runSeq,
	Plots: []PlotSpec{
		{Title: "seq: sequential throughput (128 KiB I/O)", Metrics: []string{"throughput"}, YLabel: "MB/s"},
	},
}

const seqIO = 128 << 10

// seqLoop does sequential I/O of seqIO bytes over [0, size), wrapping at
// the end, until stop; then, for writes, syncs. It returns the bytes moved.
func seqLoop(run *run, size int64, write bool, rw interface {
	ReadAt([]byte, int64) (int, error)
	WriteAt([]byte, int64) (int, error)
}, sync func() error, buf []byte) (int64, error) {
	var moved int64
	off := int64(0)
	for !run.stopped() {
		n := min(int64(len(buf)), size-off)
		var err error
		if write {
			_, err = rw.WriteAt(buf[:n], off)
		} else {
			_, err = rw.ReadAt(buf[:n], off)
		}
		if err != nil {
			return moved, err
		}
		moved += n
		if off += n; off >= size {
			off = 0
		}
	}
	if write {
		return moved, sync()
	}
	return moved, nil
}

func runSeq(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	size := cfg.seqFileBytes()
	cache := roundPages(cfg.CacheBytes)
	var rows []Result
	note := fmt.Sprintf("file %s, cache %s, device latency %v+%v jitter per I/O", fmtBytes(size), fmtBytes(cache), cfg.Latency, cfg.Jitter)

	e, err := newEnv(cfg, holefs.LockInvalidate, cache, size)
	if err != nil {
		return nil, err
	}
	err = func() error {
		// The file exists, written and cold: the write phase overwrites
		// allocated blocks, the read phase reads from the device.
		if err := e.createFilled("seq", size, cfg.Seed); err != nil {
			return err
		}
		f, err := e.fs.OpenFile("seq", os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		e.measure(cfg)
		buf := fillPattern(cfg.Seed+7, seqIO)

		p.Step("seq holefs write")
		s0, d0 := e.stats(), e.dev.stats()
		var moved int64
		var lerr error
		tm := timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
			moved, lerr = seqLoop(run, size, true, f, f.Sync, buf)
		})
		if lerr != nil {
			return lerr
		}
		s1, d1 := e.stats(), e.dev.stats()
		r := row("seq", "holefs write")
		r.add("throughput", "MB/s", float64(moved)/tm.seconds()/1e6)
		r.add("pages_per_io", "pages", float64(s1.WritebackPages-s0.WritebackPages)/float64(max(s1.WritebackIOs-s0.WritebackIOs, 1)))
		r.add("throttled", "writes", float64(s1.ThrottledWrites-s0.ThrottledWrites))
		r.add("dev_io", "µs", float64(d1.sub(d0).writeNs)/float64(max(d1.sub(d0).writes, 1))/1e3)
		r.add("other_cpu", "cores", tm.otherCPU)
		r.Note = note + "; fsync at the end included"
		rows = append(rows, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}

		p.Step("seq holefs read")
		if err := f.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
			return err
		}
		rf, err := e.fs.OpenFile("seq", os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer rf.Close()
		s0, d0 = e.stats(), e.dev.stats()
		tm = timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
			moved, lerr = seqLoop(run, size, false, rf, nil, buf)
		})
		if lerr != nil {
			return lerr
		}
		s1, d1 = e.stats(), e.dev.stats()
		r = row("seq", "holefs read")
		r.add("throughput", "MB/s", float64(moved)/tm.seconds()/1e6)
		r.add("pages_per_io", "pages", float64(s1.FillPages-s0.FillPages)/float64(max(d1.sub(d0).reads, 1)))
		r.add("hit_ratio", "%", hitRatio(s0.Hits, s0.Misses, s1.Hits, s1.Misses))
		r.add("async_ra", "windows", float64(s1.AsyncReadaheads-s0.AsyncReadaheads))
		r.add("dev_io", "µs", d1.sub(d0).meanReadUs())
		r.add("other_cpu", "cores", tm.otherCPU)
		r.Note = note
		rows = append(rows, r)
		return nil
	}()
	if cerr := e.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rows, err
	}
	if ctx.Err() != nil {
		return rows, ctx.Err()
	}

	shm, why := cfg.shmFile()
	if shm == nil {
		p.Step("seq os skipped")
		p.Step("seq os skipped")
		return append(rows, Result{Workload: "seq", Config: "os /dev/shm", Kind: Measured, Note: why}), nil
	}
	defer removeFile(shm)
	if err := fillFile(shm, size, cfg.Seed); err != nil {
		return rows, err
	}
	buf := fillPattern(cfg.Seed+7, seqIO)
	for _, write := range []bool{true, false} {
		name := map[bool]string{true: "os write", false: "os read"}[write]
		p.Step("seq " + name)
		var moved int64
		var lerr error
		tm := timed(ctx, 0, cfg.Duration, p, 1, func(_ int, run *run) {
			moved, lerr = seqLoop(run, size, write, shm, shm.Sync, buf)
		})
		if lerr != nil {
			return rows, lerr
		}
		r := row("seq", name)
		r.add("throughput", "MB/s", float64(moved)/tm.seconds()/1e6)
		r.add("other_cpu", "cores", tm.otherCPU)
		r.Note = "os.File on " + filepath.Dir(shm.Name()) + " (tmpfs: no device)"
		rows = append(rows, r)
	}
	rows = addRatio(rows, "seq", "throughput", "holefs write", "os write", "", 0)
	rows = addRatio(rows, "seq", "throughput", "holefs read", "os read", "", 0)
	return rows, nil
}
