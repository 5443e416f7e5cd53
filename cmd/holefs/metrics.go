package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/fuse"
	"github.com/holefs/holefs/pagecache"
)

// mountStats is one snapshot of a mount's counters: what /metrics exports
// and holefs stat prints (from /stats.json).
type mountStats struct {
	Mountpoint string          `json:"mountpoint"`
	Source     string          `json:"source"`
	CacheMode  string          `json:"cache_mode"`
	LockMode   string          `json:"lock_mode"`
	PID        int             `json:"pid"`
	Started    time.Time       `json:"started"`
	Cache      pagecache.Stats `json:"cache"`
	FUSE       fuse.Stats      `json:"fuse"`
	HeapBytes  uint64          `json:"heap_bytes"`
	Goroutines int             `json:"goroutines"`
}

// statsSource takes snapshots of one mount.
type statsSource struct {
	fsys     *holefs.FS
	srv      *fuse.Server
	source   string
	lockMode string
	started  time.Time
}

func (s *statsSource) snapshot() mountStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mountStats{Mountpoint: s.srv.Mountpoint(), Source: s.source, CacheMode: s.srv.CacheMode().String(),
		LockMode: s.lockMode, PID: os.Getpid(), Started: s.started, Cache: s.fsys.CacheStats(), FUSE: s.srv.Stats(),
		HeapBytes: ms.HeapAlloc, Goroutines: runtime.NumGoroutine()}
}

// cacheMetric is one page-cache counter or gauge as a Prometheus metric.
type cacheMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(pagecache.Stats) float64
}

// collector exports a mount's counters. It reads them when scraped, so the
// engine's and the server's hot paths make no Prometheus calls.
type collector struct {
	src           *statsSource
	cache         []cacheMetric
	invWaits      *prometheus.Desc
	invWaitSecs   *prometheus.Desc
	fuseErrors    *prometheus.Desc
	notifications *prometheus.Desc
}

func newCollector(src *statsSource) *collector {
	constLabels := prometheus.Labels{"mountpoint": src.srv.Mountpoint(), "lock_mode": src.lockMode}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("holefs_"+name, help, labels, constLabels)
	}
	counter := func(name, help string, v func(pagecache.Stats) int64) cacheMetric {
		return cacheMetric{desc(name, help), prometheus.CounterValue, func(s pagecache.Stats) float64 { return float64(v(s)) }}
	}
	gauge := func(name, help string, v func(pagecache.Stats) int64) cacheMetric {
		return cacheMetric{desc(name, help), prometheus.GaugeValue, func(s pagecache.Stats) float64 { return float64(v(s)) }}
	}
	return &collector{
		src: src,
		cache: []cacheMetric{
			counter("cache_hits_total", "Buffered-read and fault page lookups that found the page cached.", func(s pagecache.Stats) int64 { return s.Hits }),
			counter("cache_misses_total", "Page lookups that had to fill the page.", func(s pagecache.Stats) int64 { return s.Misses }),
			counter("cache_fill_pages_total", "Pages created and read by fill paths (read, fault, readahead).", func(s pagecache.Stats) int64 { return s.FillPages }),
			counter("cache_readahead_pages_total", "Filled pages beyond what was asked for (readahead).", func(s pagecache.Stats) int64 { return s.ReadaheadPages }),
			counter("cache_async_readaheads_total", "Asynchronous readahead windows started.", func(s pagecache.Stats) int64 { return s.AsyncReadaheads }),
			counter("cache_writeback_pages_total", "Pages written back.", func(s pagecache.Stats) int64 { return s.WritebackPages }),
			counter("cache_writeback_ios_total", "Device writes issued by writeback.", func(s pagecache.Stats) int64 { return s.WritebackIOs }),
			counter("cache_evictions_total", "Clean pages evicted.", func(s pagecache.Stats) int64 { return s.Evictions }),
			counter("cache_throttled_writes_total", "Writes that wrote back before dirtying more (dirty throttling).", func(s pagecache.Stats) int64 { return s.ThrottledWrites }),
			counter("cache_over_limit_total", "Page allocations beyond the cache limit and its slack.", func(s pagecache.Stats) int64 { return s.OverLimit }),
			gauge("cache_pages", "Evictable pages cached.", func(s pagecache.Stats) int64 { return s.Pages }),
			gauge("cache_dirty_pages", "Dirty pages.", func(s pagecache.Stats) int64 { return s.DirtyPages }),
			gauge("cache_unevictable_pages", "Pages that are the storage (memory backend).", func(s pagecache.Stats) int64 { return s.UnevictablePages }),
			gauge("cache_limit_pages", "The cache limit in pages.", func(s pagecache.Stats) int64 { return s.LimitPages }),
			gauge("cache_frame_bytes", "Bytes of page frames holding pages (outside the Go heap; shared by the process's caches).", func(s pagecache.Stats) int64 { return s.FrameBytes }),
			gauge("cache_frame_mapped_bytes", "Bytes of page-frame chunks mapped (shared by the process's caches).", func(s pagecache.Stats) int64 { return s.FrameMappedBytes }),
		},
		invWaits:      desc("invalidate_lock_waits_total", "Acquisitions of an invalidate lock that found it taken, by mode (shared: fills; exclusive: punch, truncate and the other block removers).", "mode"),
		invWaitSecs:   desc("invalidate_lock_wait_seconds_total", "Time blocked taking invalidate locks, by mode.", "mode"),
		fuseErrors:    desc("fuse_errors_total", "FUSE requests answered with an error, by operation and errno (expected ones included, such as ENOENT from lookups).", "op", "errno"),
		notifications: desc("fuse_notifications_total", "Kernel cache invalidations for changes made through the library, by result (sent; miss: the kernel had nothing cached; failed).", "result"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.cache {
		ch <- m.desc
	}
	ch <- c.invWaits
	ch <- c.invWaitSecs
	ch <- c.fuseErrors
	ch <- c.notifications
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.snapshot()
	for _, m := range c.cache {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(s.Cache))
	}
	ch <- prometheus.MustNewConstMetric(c.invWaits, prometheus.CounterValue, float64(s.Cache.InvalidateSharedWaits), "shared")
	ch <- prometheus.MustNewConstMetric(c.invWaits, prometheus.CounterValue, float64(s.Cache.InvalidateExclusiveWaits), "exclusive")
	ch <- prometheus.MustNewConstMetric(c.invWaitSecs, prometheus.CounterValue, s.Cache.InvalidateSharedWait.Seconds(), "shared")
	ch <- prometheus.MustNewConstMetric(c.invWaitSecs, prometheus.CounterValue, s.Cache.InvalidateExclusiveWait.Seconds(), "exclusive")
	for _, e := range s.FUSE.Errors {
		ch <- prometheus.MustNewConstMetric(c.fuseErrors, prometheus.CounterValue, float64(e.N), e.Op, e.Errno)
	}
	ch <- prometheus.MustNewConstMetric(c.notifications, prometheus.CounterValue, float64(s.FUSE.Notifications), "sent")
	ch <- prometheus.MustNewConstMetric(c.notifications, prometheus.CounterValue, float64(s.FUSE.NotifyMisses), "miss")
	ch <- prometheus.MustNewConstMetric(c.notifications, prometheus.CounterValue, float64(s.FUSE.NotifyFailures), "failed")
}

// metricsHandler serves /metrics (Prometheus text format) and /stats.json
// (the snapshot holefs stat prints).
func metricsHandler(src *statsSource) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/stats.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(src.snapshot())
	})
	return mux
}

// checkLoopback accepts only a host:port whose host is a loopback address
// or localhost: the metrics have no authentication.
func checkLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
