package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

var memory = Workload{
	Name: "memory",
	Brief: "engine heap per cached 4 KiB page beyond its 4096 data bytes, and peak RSS while random reads " +
		"churn a file twice the cache, for three cache sizes (device in a file; page frames mmap'd outside the Go heap)",
	Steps: func(cfg Config) int { return len(cfg.memoryCacheBytes()) },
	Run:   runMemory,
	Plots: []PlotSpec{
		{Title: "memory: overhead per cached page", Metrics: []string{"overhead_per_page"}, YLabel: "bytes"},
		{Title: "memory: cache size, and peak RSS growth over the RSS before", Metrics: []string{"cache_mib", "rss_growth_mib"}, YLabel: "MiB"},
	},
}

// procStatus returns a field of /proc/self/status in bytes (VmRSS, VmHWM).
func procStatus(field string) (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				kb, err := strconv.ParseInt(fs[0], 10, 64)
				return kb << 10, err == nil
			}
		}
	}
	return 0, false
}

// resetPeakRSS resets VmHWM to the current RSS (Linux >= 4.0), so a later
// VmHWM is the peak of what follows only.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC() // a second cycle empties the sync.Pools' victim caches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func runMemory(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	var rows []Result
	dir, err := os.MkdirTemp(cfg.tempDir(), "holefs-bench-mem-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for i, cache := range cfg.memoryCacheBytes() {
		cache = roundPages(cache)
		p.Step("memory cache " + fmtBytes(cache))
		r, err := memoryOnce(ctx, cfg, p, filepath.Join(dir, fmt.Sprintf("dev%d", i)), cache)
		if err != nil {
			return rows, err
		}
		rows = append(rows, r)
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	return rows, nil
}

func memoryOnce(ctx context.Context, cfg Config, p Progress, devPath string, cache int64) (Result, error) {
	fileBytes := 2 * cache
	pages := cache / pageSize
	runtime.GC() // empty the sync.Pools (two cycles), then return memory
	runtime.GC()
	debug.FreeOSMemory()
	base, haveRSS := procStatus("VmRSS")
	hwmOK := resetPeakRSS()

	fdev, err := blockdev.OpenFile(devPath, fileBytes/pageSize+1024)
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(devPath)
	dev := newLatencyDevice(fdev, cfg.Seed, cfg.SleepDevice)
	fsys, err := holefs.Open("", holefs.Options{Device: dev, CacheBytes: cache})
	if err != nil {
		dev.Close()
		return Result{}, err
	}
	e := &env{fs: fsys, dev: dev.latency}
	defer e.close()
	if err := e.createFilled("mem", fileBytes, cfg.Seed); err != nil {
		return Result{}, err
	}
	f, err := e.fs.OpenFile("mem", os.O_RDONLY, 0)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()

	// Overhead: heap with the cache empty, then with half and with all of
	// `pages` pages cached (the first bytes of the file, which fit without
	// eviction). Readahead(2) fills synchronously: no async readahead is
	// in flight, holding a bounce buffer, when the heap is measured.
	// Page contents live in frames outside the Go heap (pagecache's
	// arena): memory per page is the heap's growth plus the frames'.
	h0 := heapAlloc() + e.stats().FrameBytes
	if err := f.Readahead(0, cache/2); err != nil {
		return Result{}, err
	}
	hHalf := heapAlloc()
	st := e.stats()
	hHalf, half := hHalf+st.FrameBytes, st.Pages
	if err := f.Readahead(cache/2, cache-cache/2); err != nil {
		return Result{}, err
	}
	h1 := heapAlloc()
	st = e.stats()
	h1, cached := h1+st.FrameBytes, st.Pages
	overhead := float64(h1-h0-cached*pageSize) / float64(max(cached, 1))
	marginal := float64(h1-hHalf-(cached-half)*pageSize) / float64(max(cached-half, 1))

	// Peak RSS: random 4 KiB reads over the whole file (twice the cache)
	// with eviction, sampling VmRSS every 5 ms.
	e.measure(cfg)
	var peak atomic.Int64
	sampleDone := make(chan struct{})
	sampleStop := make(chan struct{})
	go func() {
		defer close(sampleDone)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v, ok := procStatus("VmRSS"); ok && v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-sampleStop:
				return
			case <-t.C:
			}
		}
	}()
	handles := make([]*holefs.File, cfg.Readers)
	for i := range handles {
		if handles[i], err = e.fs.OpenFile("mem", os.O_RDONLY, 0); err != nil {
			close(sampleStop)
			return Result{}, err
		}
		defer handles[i].Close()
	}
	var ferr firstErr
	var reads atomic.Int64
	tm := timed(ctx, 0, cfg.Duration, p, cfg.Readers, func(g int, run *run) {
		r := cfg.rng("memory", g)
		b := make([]byte, pageSize)
		n := int64(0)
		for !run.stopped() {
			if _, err := handles[g].ReadAt(b, r.Int64N(fileBytes/pageSize)*pageSize); err != nil {
				ferr.set(err)
				break
			}
			n++
		}
		reads.Add(n)
	})
	close(sampleStop)
	<-sampleDone
	if ferr.err != nil {
		return Result{}, ferr.err
	}
	if hwm, ok := procStatus("VmHWM"); ok && hwmOK && hwm > peak.Load() {
		peak.Store(hwm)
	}
	st = e.stats()

	r := row("memory", "cache "+fmtBytes(cache))
	r.add("cached_pages", "pages", float64(cached))
	r.addT("overhead_per_page", "B", overhead, &Target{Op: "<=", Bound: 64})
	r.add("marginal_per_page", "B", marginal)
	r.add("cache_mib", "MiB", float64(cache)/(1<<20))
	r.add("peak_rss_mib", "MiB", float64(peak.Load())/(1<<20))
	r.add("base_rss_mib", "MiB", float64(base)/(1<<20))
	r.add("rss_growth_mib", "MiB", float64(peak.Load()-base)/(1<<20))
	// The target: RSS <= CacheBytes + 10% + a few MiB (taken as 8), for
	// what the engine adds to the process: peak minus the RSS before.
	lim := (float64(cache)*1.1 + 8<<20) / (1 << 20)
	r.addT("rss_growth_vs_target", "x", float64(peak.Load()-base)/(1<<20)/lim, &Target{Op: "<=", Bound: 1})
	r.add("reads", "ops/s", float64(reads.Load())/tm.seconds())
	r.add("over_limit", "allocs", float64(st.OverLimit))
	r.add("frames_mapped_mib", "MiB", float64(st.FrameMappedBytes)/(1<<20))
	r.add("other_cpu", "cores", tm.otherCPU)
	var notes []string
	notes = append(notes, fmt.Sprintf("file twice the cache on a file device in %s; rss_growth_vs_target = (peak RSS - base RSS) / (cache x 1.1 + 8 MiB); overhead_per_page = (heap + page frames with the cache full - the same with it empty)/pages - 4096, marginal_per_page the same between half and full", filepath.Dir(filepath.Dir(devPath))))
	if !haveRSS {
		notes = append(notes, "no /proc/self/status: RSS not measured")
	} else if !hwmOK {
		notes = append(notes, "VmHWM could not be reset: peak from 5 ms VmRSS samples only")
	}
	if pages != cached {
		notes = append(notes, fmt.Sprintf("%d of %d pages cached for the overhead measure", cached, pages))
	}
	r.Note = strings.Join(notes, "; ")
	return r, nil
}
