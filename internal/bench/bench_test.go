package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holefs/holefs/blockdev"
)

// tinyConfig runs every workload in a fraction of a second. Tests check
// that rows exist with sane metrics, never how fast anything was.
func tinyConfig(t *testing.T) Config {
	return Config{
		Duration:         100 * time.Millisecond, // long enough that every worker runs under a loaded -race CI
		Readers:          3,
		Writers:          1,
		Latency:          20 * time.Microsecond,
		Jitter:           10 * time.Microsecond,
		CacheBytes:       minCacheBytes, // 256 KiB
		Punch:            true,
		Seed:             7,
		HitFileBytes:     128 << 10,
		SeqFileBytes:     512 << 10,
		PunchPages:       []int64{0, 10, 100},
		PunchRanges:      []int64{4 << 10, 1 << 20, 1 << 40},
		MemoryCacheBytes: []int64{minCacheBytes, 2 * minCacheBytes},
		ChurnFileBytes:   10 * minCacheBytes,
		TempDir:          t.TempDir(),
	}
}

// countingProgress records the steps announced.
type countingProgress struct {
	mu     sync.Mutex
	steps  []string
	maxFra float64
}

func (c *countingProgress) Step(l string) { c.mu.Lock(); c.steps = append(c.steps, l); c.mu.Unlock() }
func (c *countingProgress) Fraction(f float64) {
	c.mu.Lock()
	c.maxFra = max(c.maxFra, f)
	c.mu.Unlock()
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// checkRows checks that every row is of workload w, has a config name and
// finite metrics, and that the rows named in positive (ratios as
// "a / b metric") have each listed
// metric > 0. It returns the rows by config.
func checkRows(t *testing.T, w string, rows []Result, positive map[string][]string) map[string]Result {
	t.Helper()
	by := map[string]Result{}
	for _, r := range rows {
		if r.Workload != w || r.Config == "" {
			t.Errorf("row %+v: want workload %q and a config", r, w)
		}
		key := r.Config
		if r.Kind == Ratio { // ratios are keyed by configs and metric
			key += " " + r.Metrics[0].Name
		}
		if _, dup := by[key]; dup {
			t.Errorf("two rows named %q", key)
		}
		by[key] = r
		for _, m := range r.Metrics {
			if !finite(m.Value) {
				t.Errorf("%s %s: %s = %v", w, r.Config, m.Name, m.Value)
			}
			if m.Unit == "" {
				t.Errorf("%s %s: %s has no unit", w, r.Config, m.Name)
			}
		}
	}
	for cfg, names := range positive {
		r, ok := by[cfg]
		if !ok {
			t.Errorf("%s: no row %q; rows: %v", w, cfg, keys(by))
			continue
		}
		for _, n := range names {
			if v, ok := r.Get(n); !ok || !(v > 0) {
				t.Errorf("%s %s: %s = %v (present %v), want > 0", w, cfg, n, v, ok)
			}
		}
	}
	return by
}

func keys(m map[string]Result) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func runOne(t *testing.T, w Workload, cfg Config) []Result {
	t.Helper()
	var p countingProgress
	rows, err := w.Run(context.Background(), cfg, &p)
	if err != nil {
		t.Fatalf("%s: %v", w.Name, err)
	}
	if got, want := len(p.steps), w.Steps(cfg); got != want {
		t.Errorf("%s announced %d steps %q, Steps says %d", w.Name, got, p.steps, want)
	}
	return rows
}

func TestMixedRW(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, mixedRW, cfg)
	want := []string{"reader_ops", "writer_ops", "read_p50", "read_p99", "read_p999", "dev_read", "punch_ops"}
	by := checkRows(t, "mixed-rw", rows, map[string][]string{"invalidate": want, "rwsem": want, "none": want})
	for _, name := range []string{"invalidate / rwsem reader_ops", "invalidate / none reader_ops"} {
		r, ok := by[name]
		if !ok || r.Kind != Ratio || r.Metrics[0].Target == nil || !(r.Metrics[0].Value > 0) {
			t.Errorf("ratio %q: %+v", name, r)
		}
	}
	if v, _ := by["dax invalidate"].Get("reader_ops"); !(v > 0) {
		t.Errorf("mixed-rw in DAX mode: reader_ops %v", v)
	}
	r := by["invalidate"]
	p50, _ := r.Get("read_p50")
	p99, _ := r.Get("read_p99")
	p999, _ := r.Get("read_p999")
	if !(p50 <= p99 && p99 <= p999) {
		t.Errorf("quantiles out of order: p50 %v p99 %v p999 %v", p50, p99, p999)
	}
	if h, _ := r.Get("hit_ratio"); h < 0 || h > 100 {
		t.Errorf("hit ratio %v", h)
	}
}

func TestHit(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, hit, cfg)
	want := []string{"ops", "ns_per_op", "bandwidth"}
	pos := map[string][]string{}
	for _, m := range []string{"invalidate", "none", "rwsem", "os"} {
		for _, g := range []int{1, 2, 3} {
			pos[hitName(m, g)] = want
		}
	}
	by := checkRows(t, "hit", rows, pos)
	for _, m := range []string{"invalidate", "none", "rwsem"} {
		if v, _ := by[hitName(m, 1)].Get("misses"); v != 0 {
			t.Errorf("%s: %v misses on a fully cached file", m, v)
		}
	}
	for _, name := range []string{"invalidate 1g / none 1g ops", "invalidate 3g / none 3g ops", "invalidate 1g / os 1g ops", "invalidate 2g / invalidate 1g ops"} {
		if r, ok := by[name]; !ok || r.Kind != Ratio || r.Metrics[0].Target == nil {
			t.Errorf("no ratio %q with a target", name)
		}
	}
}

func TestHitWithoutShm(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.TempDir = t.TempDir() + "/missing"
	rows := runOne(t, hit, cfg)
	by := checkRows(t, "hit", rows, map[string][]string{"invalidate 1g": {"ops"}})
	if r, ok := by["os /dev/shm"]; !ok || !strings.Contains(r.Note, "skipped") {
		t.Errorf("no skip note for the missing reference: %+v", r)
	}
}

func TestSeq(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, seq, cfg)
	by := checkRows(t, "seq", rows, map[string][]string{
		"holefs write": {"throughput", "pages_per_io", "dev_io"},
		"holefs read":  {"throughput", "pages_per_io", "dev_io"},
		"os write":     {"throughput"},
		"os read":      {"throughput"},
	})
	if v, _ := by["holefs read"].Get("pages_per_io"); v < 1 {
		t.Errorf("readahead read %v pages per device read", v)
	}
}

func TestPunchScale(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, punchScale, cfg)
	by := checkRows(t, "punch-scale", rows, map[string][]string{
		"P=0":                      {"ns_per_punch", "iterations"},
		"P=10":                     {"ns_per_punch", "ns_per_page", "cached_pages"},
		"P=100":                    {"ns_per_punch", "ns_per_page", "cached_pages"},
		"sparse 4 KiB":             {"ns_per_punch", "iterations"},
		"sparse 1 MiB":             {"ns_per_punch", "iterations"},
		"sparse 1 TiB":             {"ns_per_punch", "iterations"},
		"P=100 / P=10 ns_per_page": {"ns_per_page"},
	})
	// The cached pages are what the workload says it set up: exactly P.
	for _, P := range []int64{0, 10, 100} {
		if v, _ := by["P="+countName(P)].Get("cached_pages"); v != float64(P) {
			t.Errorf("P=%d: %v pages cached before the punch", P, v)
		}
	}
	if v, _ := by["sparse 1 TiB"].Get("cached_pages"); v != 0 {
		t.Errorf("sparse punch with %v pages cached", v)
	}
	if metricTarget(by["sparse 1 TiB"], "ns_per_punch") == nil {
		t.Error("the 1 TiB punch has no target")
	}
}

func TestMemory(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, memory, cfg)
	want := []string{"cached_pages", "cache_mib", "reads"}
	by := checkRows(t, "memory", rows, map[string][]string{"cache 256 KiB": want, "cache 512 KiB": want})
	for _, r := range by {
		if _, ok := r.Get("overhead_per_page"); !ok || metricTarget(r, "overhead_per_page") == nil {
			t.Errorf("%s: no overhead_per_page with a target", r.Config)
		}
		if _, ok := procStatus("VmRSS"); ok {
			if v, _ := r.Get("peak_rss_mib"); !(v > 0) {
				t.Errorf("%s: peak RSS %v", r.Config, v)
			}
		}
	}
}

func TestChurn(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, churn, cfg)
	by := checkRows(t, "churn", rows, map[string][]string{
		"uniform holefs CLOCK": {"ops"},
		"zipf holefs CLOCK":    {"ops"},
	})
	for _, d := range churnDists {
		for _, c := range []string{" holefs CLOCK", " sim LRU", " sim CLOCK"} {
			r, ok := by[d+c]
			if !ok {
				t.Errorf("no row %q", d+c)
				continue
			}
			if h, ok := r.Get("hit_ratio"); !ok || h < 0 || h > 100 {
				t.Errorf("%s: hit ratio %v", r.Config, h)
			}
			if strings.Contains(c, "sim") && (r.Kind != Simulated || !strings.Contains(r.Note, "SIMULATION")) {
				t.Errorf("%s: kind %q note %q: simulated rows must say so", r.Config, r.Kind, r.Note)
			}
		}
	}
}

func TestRunAllTiny(t *testing.T) {
	// Everything through Run, with a progress that counts steps: the CLI's
	// progress bar is sized by TotalSteps.
	cfg := tinyConfig(t)
	cfg.Punch = false
	ws, err := Select("all")
	if err != nil {
		t.Fatal(err)
	}
	var p countingProgress
	rows, err := Run(context.Background(), ws, cfg, &p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(p.steps), TotalSteps(ws, cfg); got != want {
		t.Errorf("%d steps announced, TotalSteps %d", got, want)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Workload] = true
	}
	for _, n := range Names() {
		if !seen[n] {
			t.Errorf("no rows of %s", n)
		}
	}

	// Every output form works on real rows.
	rep := &Report{Command: "test", Started: time.Now(), Machine: ThisMachine(), Config: cfg, Workload: ws, Results: rows}
	var tab bytes.Buffer
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"== mixed-rw", "== hit", "== seq", "== punch-scale", "== memory", "== churn", "invalidate / rwsem", "SIMULATION"} {
		if !strings.Contains(tab.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, tab.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Results []struct {
			Workload string             `json:"workload"`
			Config   string             `json:"config"`
			Kind     string             `json:"kind"`
			Metrics  map[string]float64 `json:"metrics"`
			Units    map[string]string  `json:"units"`
		} `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &parsed); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, js.String())
	}
	if len(parsed.Results) != len(rows) {
		t.Errorf("JSON has %d results, want %d", len(parsed.Results), len(rows))
	}
	for _, format := range []string{"png", "svg"} {
		var img bytes.Buffer
		if err := WritePlot(&img, format, ws, rows, "test"); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		magic := map[string]string{"png": "\x89PNG", "svg": "<?xml"}[format]
		if !strings.HasPrefix(img.String(), magic) {
			t.Errorf("%s output starts %q", format, img.String()[:min(16, img.Len())])
		}
	}
}

func TestRunCancelled(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Duration = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, []Workload{mixedRW}, cfg, nil)
	if err == nil {
		t.Fatal("a cancelled run returned no error")
	}
	if el := time.Since(start); el > time.Minute {
		t.Errorf("cancelled run took %v", el)
	}
}

func TestSelect(t *testing.T) {
	ws, err := Select("all")
	if err != nil || len(ws) != len(Workloads()) {
		t.Fatalf("all: %d workloads, %v", len(ws), err)
	}
	ws, err = Select("hit, seq,hit")
	if err != nil || len(ws) != 2 || ws[0].Name != "hit" || ws[1].Name != "seq" {
		t.Fatalf("hit, seq,hit: %v, %v", ws, err)
	}
	for _, bad := range []string{"", "fast", "hit,fast", ","} {
		if _, err := Select(bad); err == nil {
			t.Errorf("Select(%q) accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*Config){
		func(c *Config) { c.Duration = 0 },
		func(c *Config) { c.Readers = 0 },
		func(c *Config) { c.Writers = -1 },
		func(c *Config) { c.Latency = -1 },
		func(c *Config) { c.CacheBytes = 4096 },
	} {
		c := DefaultConfig()
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
}

func TestStreamsDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	a, b, c := cfg.rng("x", 0), cfg.rng("x", 0), cfg.rng("x", 1)
	same, diff := true, false
	for range 100 {
		va, vb, vc := a.Uint64(), b.Uint64(), c.Uint64()
		same = same && va == vb
		diff = diff || va != vc
	}
	if !same || !diff {
		t.Errorf("same stream equal: %v, other goroutine different: %v", same, diff)
	}
	cfg2 := cfg
	cfg2.Seed++
	if cfg.rng("x", 0).Uint64() == cfg2.rng("x", 0).Uint64() {
		t.Error("the seed does not change the stream")
	}
	// The churn trace is a pure function of the seed and the counts.
	t1 := churnTrace(cfg, "zipf", 1000, []int64{50, 70})
	t2 := churnTrace(cfg, "zipf", 1000, []int64{50, 70})
	if len(t1) != 120 || !slicesEqual(t1, t2) {
		t.Errorf("churn traces differ or have the wrong length %d", len(t1))
	}
	for _, p := range t1 {
		if p < 0 || p >= 1000 {
			t.Fatalf("page %d out of range", p)
		}
	}
}

func slicesEqual(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSimulators(t *testing.T) {
	// LRU, capacity 3: 0 1 2 miss, 0 hit, 3 miss (evicts 1), 0 hit,
	// 1 miss (evicts 2), 2 miss (evicts 3).
	trace := []int32{0, 1, 2, 0, 3, 0, 1, 2}
	if h := simLRU(trace, 4, 3); h != 2 {
		t.Errorf("LRU hits %d, want 2", h)
	}
	// CLOCK, capacity 3, batch 1: 0 1 2 miss (all referenced), 0 hit,
	// 3 misses: the hand clears 0 1 2 and evicts 0; 0 misses: evicts 1
	// (cleared); 1 misses: evicts 2; 2 misses: 3, 0, 1 referenced... all
	// rotate once and 3 goes.
	if h := simCLOCK(trace, 4, 3, 1); h != 1 {
		t.Errorf("CLOCK hits %d, want 1", h)
	}
	// Everything fits: only first touches miss.
	long := make([]int32, 0, 1000)
	for i := range 1000 {
		long = append(long, int32(i%50))
	}
	if h := simLRU(long, 50, 50); h != 950 {
		t.Errorf("LRU with room for all: %d hits", h)
	}
	if h := simCLOCK(long, 50, 50, 32); h != 950 {
		t.Errorf("CLOCK with room for all: %d hits", h)
	}
	// A loop one page larger than the cache defeats LRU completely.
	loop := make([]int32, 0, 1000)
	for i := range 1000 {
		loop = append(loop, int32(i%11))
	}
	if h := simLRU(loop, 11, 10); h != 0 {
		t.Errorf("LRU on a loop larger than the cache: %d hits", h)
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 10000e3
		if got := h.quantile(q); math.Abs(got-want)/want > 0.04 {
			t.Errorf("q%v = %v, want about %v", q, got, want)
		}
	}
	if h.quantile(1) != 10000e3 {
		t.Errorf("max %v", h.quantile(1))
	}
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1 << 20, 1<<63 + 12345, math.MaxUint64} {
		b := histBucket(v)
		if b < 0 || b >= len(h.counts) {
			t.Fatalf("bucket of %d: %d", v, b)
		}
		if mid := histValue(b); v >= 64 && math.Abs(mid-float64(v))/float64(v) > 0.04 {
			t.Errorf("value %d in bucket %d of middle %v", v, b, mid)
		}
	}
	var empty hist
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Error("empty histogram")
	}
}

func TestLatencyDevice(t *testing.T) {
	for _, sleep := range []bool{false, true} {
		d := newLatencyDevice(blockdev.NewMemory(16), 1, sleep)
		d.SetLatency(200*time.Microsecond, 100*time.Microsecond)
		buf := make([]byte, pageSize)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					start := time.Now()
					if err := d.WriteBlocks(buf, int64(g)); err != nil {
						t.Error(err)
					}
					if el := time.Since(start); el < 200*time.Microsecond {
						t.Errorf("sleep=%v: an I/O took %v, under the latency", sleep, el)
					}
					if err := d.ReadBlocks(buf, int64(g)); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		s := d.stats()
		if s.reads != 20 || s.writes != 20 || s.meanReadUs() < 200 {
			t.Errorf("stats %+v", s)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1.5: "1.50", 12.34: "12.3", 512: "512", 12345: "12.3k", 2.5e6: "2.50M", 3e9: "3.00G"} {
		if got := fmtNum(v); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", v, got, want)
		}
	}
	for n, want := range map[int64]string{4096: "4 KiB", 1 << 40: "1 TiB", 3 << 20: "3 MiB", 1000: "1000 B"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
	tg := &Target{Op: "<=", Bound: 2}
	if !tg.Met(2) || tg.Met(2.1) {
		t.Error("<= target")
	}
	tg = &Target{Op: ">=", Bound: 2}
	if !tg.Met(2) || tg.Met(1.9) {
		t.Error(">= target")
	}
}

func TestZoneReset(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, zoneReset, cfg)
	by := checkRows(t, "zone-reset", rows, map[string][]string{
		"P=0":   {"ns_per_reset", "iterations"},
		"P=10":  {"ns_per_reset", "cached_pages"},
		"P=100": {"ns_per_reset", "cached_pages"},
	})
	// The cached pages are what the workload says it set up: exactly P.
	for _, P := range []int64{0, 10, 100} {
		if v, _ := by["P="+countName(P)].Get("cached_pages"); v != float64(P) {
			t.Errorf("P=%d: %v pages cached before the reset", P, v)
		}
	}
}
