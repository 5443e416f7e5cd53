// Package bench holds holefs's benchmark workloads, the engine behind
// `holefs bench`: named workloads, each run under several configurations
// (lock modes, goroutine counts, cache sizes, a reference such as os.File on
// /dev/shm) in one process, returning uniform Result rows that the CLI
// formats as a table, as JSON or as a plot.
//
// Every workload's operation sequence is deterministic given Config.Seed:
// each goroutine draws its offsets from its own PCG stream seeded by the
// seed, the configuration and the goroutine number. How many operations run
// depends on the machine (workloads run for Config.Duration), the sequence
// they are drawn from does not.
package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Config is what a run of the workloads is told.
type Config struct {
	// Duration is how long each configuration of a timed workload runs.
	Duration time.Duration
	// Readers and Writers are goroutine counts: readers of mixed-rw and
	// churn, the largest goroutine count of hit (N), writers of mixed-rw.
	Readers, Writers int
	// Latency and Jitter delay every device I/O of the benchmark devices:
	// each takes Latency plus a uniform random extra in [0, Jitter).
	Latency, Jitter time.Duration
	// CacheBytes is the page cache size of mixed-rw and churn (whose files
	// are 4x and 10x larger) and the middle of memory's three sizes.
	CacheBytes int64
	// Punch adds a punch/zero-range issuer to mixed-rw.
	Punch bool
	// Seed seeds every operation sequence.
	Seed uint64
	// SleepDevice makes the benchmark devices delay I/O with time.Sleep,
	// exactly as Options.Latency does (blockdev.Faulty), instead of the
	// precise timer of this package. See latencyDevice.
	SleepDevice bool

	// Sizes, for tests and experiments; zero means the default.

	// HitFileBytes is the fully cached file of hit (default 16 MiB).
	HitFileBytes int64
	// SeqFileBytes is the file of seq (default 2 x CacheBytes).
	SeqFileBytes int64
	// PunchPages are the cached-page counts of punch-scale and zone-reset
	// (default 0, 1000, 10000, 100000); the punched range, and the zone,
	// are as long as the largest.
	PunchPages []int64
	// PunchRanges are the sparse range sizes of punch-scale (default
	// 4 KiB, 1 MiB, 1 GiB, 1 TiB).
	PunchRanges []int64
	// MemoryCacheBytes are the cache sizes of memory (default CacheBytes/4,
	// CacheBytes, 4 x CacheBytes).
	MemoryCacheBytes []int64
	// ChurnFileBytes is the file of churn (default 10 x CacheBytes).
	ChurnFileBytes int64
	// TempDir holds the files of the os.File references and of memory's
	// file-backed device (default /dev/shm if present, else os.TempDir).
	TempDir string
	// ImageDir holds image's durable image and its plain-file reference
	// (default os.TempDir: a disk filesystem, where durability costs).
	ImageDir string
}

// DefaultConfig is the configuration of a plain `holefs bench`.
func DefaultConfig() Config {
	return Config{
		Duration:   3 * time.Second,
		Readers:    4,
		Writers:    1,
		Latency:    50 * time.Microsecond,
		Jitter:     50 * time.Microsecond,
		CacheBytes: 64 << 20,
		Seed:       1,
	}
}

const pageSize = 4096

// minCacheBytes is the smallest cache the engine accepts (64 pages).
const minCacheBytes = 64 * pageSize

// Validate reports a configuration no workload can run with.
func (c Config) Validate() error {
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("duration must be positive, not %v", c.Duration)
	case c.Readers < 1:
		return fmt.Errorf("readers must be at least 1, not %d", c.Readers)
	case c.Writers < 0:
		return fmt.Errorf("writers must not be negative, not %d", c.Writers)
	case c.Latency < 0 || c.Jitter < 0:
		return fmt.Errorf("latency and jitter must not be negative")
	case c.CacheBytes < minCacheBytes:
		return fmt.Errorf("cache bytes must be at least %d (64 pages), not %d", minCacheBytes, c.CacheBytes)
	}
	return nil
}

func (c Config) hitFileBytes() int64 {
	if c.HitFileBytes > 0 {
		return roundPages(c.HitFileBytes)
	}
	return 16 << 20
}

func (c Config) seqFileBytes() int64 {
	if c.SeqFileBytes > 0 {
		return roundPages(c.SeqFileBytes)
	}
	return 2 * roundPages(c.CacheBytes)
}

func (c Config) punchPages() []int64 {
	if len(c.PunchPages) > 0 {
		return c.PunchPages
	}
	return []int64{0, 1000, 10000, 100000}
}

func (c Config) punchRanges() []int64 {
	if len(c.PunchRanges) > 0 {
		return c.PunchRanges
	}
	return []int64{4 << 10, 1 << 20, 1 << 30, 1 << 40}
}

func (c Config) memoryCacheBytes() []int64 {
	if len(c.MemoryCacheBytes) > 0 {
		return c.MemoryCacheBytes
	}
	return []int64{max(roundPages(c.CacheBytes/4), minCacheBytes), roundPages(c.CacheBytes), 4 * roundPages(c.CacheBytes)}
}

func (c Config) churnFileBytes() int64 {
	if c.ChurnFileBytes > 0 {
		return roundPages(c.ChurnFileBytes)
	}
	return 10 * roundPages(c.CacheBytes)
}

func roundPages(n int64) int64 { return max(n/pageSize, 1) * pageSize }

// rng returns the PCG stream of goroutine g in the configuration named
// stream: the same seed always gives the same operation sequence.
func (c Config) rng(stream string, g int) *rand.Rand {
	h := uint64(14695981039346656037) // FNV-1a of the stream name
	for i := 0; i < len(stream); i++ {
		h ^= uint64(stream[i])
		h *= 1099511628211
	}
	src := new(paddedPCG)
	src.Seed(c.Seed^h, uint64(g)+1)
	return rand.New(&src.PCG)
}

// paddedPCG fills a 64-byte allocation: a generator's state is written on
// every draw, and two goroutines' generators sharing a cache line slowed
// whole configurations by half (false sharing, depending on where the
// allocator happened to put them).
type paddedPCG struct {
	rand.PCG
	_ [48]byte
}

// Progress receives a workload's progress: Step when it starts each of
// the Steps(cfg) configurations it announced, Fraction as a timed
// configuration runs. Implementations must be safe for concurrent use.
type Progress interface {
	Step(label string)
	Fraction(f float64)
}

// NopProgress discards progress.
type NopProgress struct{}

func (NopProgress) Step(string)      {}
func (NopProgress) Fraction(float64) {}

// Workload is a named benchmark.
type Workload struct {
	Name  string
	Brief string
	// Steps is how many configurations Run will announce with
	// Progress.Step.
	Steps func(cfg Config) int
	// Run runs every configuration and returns their rows.
	Run func(ctx context.Context, cfg Config, p Progress) ([]Result, error)
	// Plots are the panels the workload contributes to a plot.
	Plots []PlotSpec
}

// Workloads lists every workload in the order `all` runs them.
func Workloads() []Workload {
	return []Workload{mixedRW, cachedRW, hit, seq, punchScale, rangePunch, zoneReset, memory, churn, image, fsyncWL}
}

// Names returns the workload names.
func Names() []string {
	var out []string
	for _, w := range Workloads() {
		out = append(out, w.Name)
	}
	return out
}

// Select parses a comma-separated list of workload names ("all" for
// every one) into workloads, in the order given, without duplicates.
func Select(list string) ([]Workload, error) {
	var out []Workload
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if name == "all" {
			for _, w := range Workloads() {
				if !seen[w.Name] {
					seen[w.Name] = true
					out = append(out, w)
				}
			}
			continue
		}
		i := slices.IndexFunc(Workloads(), func(w Workload) bool { return w.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q (want all or a comma list of %s)", name, strings.Join(Names(), ", "))
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, Workloads()[i])
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload named (want all or a comma list of %s)", strings.Join(Names(), ", "))
	}
	return out, nil
}

// Kind tells what a Result row is.
type Kind string

const (
	// Measured rows come from running the engine or a reference.
	Measured Kind = "measured"
	// Simulated rows come from a model (churn's LRU and CLOCK trace simulator).
	Simulated Kind = "simulated"
	// Ratio rows are quotients of measured rows.
	Ratio Kind = "ratio"
)

// Result is one row: a configuration of a workload and its metrics.
type Result struct {
	Workload string
	Config   string
	Kind     Kind
	Metrics  []Metric
	Note     string
}

// Metric is one named number of a row. Target, if set, is the goal the
// issue set for it.
type Metric struct {
	Name   string
	Unit   string
	Value  float64
	Target *Target
}

// Target is a goal for a metric: Value >= Min, or Value <= Max.
type Target struct {
	Op    string // ">=" or "<="
	Bound float64
}

// Met reports whether v meets the target.
func (t *Target) Met(v float64) bool {
	if t.Op == "<=" {
		return v <= t.Bound
	}
	return v >= t.Bound
}

func (t *Target) String() string { return fmt.Sprintf("%s %s", t.Op, fmtNum(t.Bound)) }

// Get returns the value of the named metric and whether the row has it.
func (r Result) Get(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

func (r *Result) add(name, unit string, v float64) *Result {
	r.Metrics = append(r.Metrics, Metric{Name: name, Unit: unit, Value: v})
	return r
}

func (r *Result) addT(name, unit string, v float64, t *Target) *Result {
	r.Metrics = append(r.Metrics, Metric{Name: name, Unit: unit, Value: v, Target: t})
	return r
}

// row returns a measured row.
func row(workload, config string) Result {
	return Result{Workload: workload, Config: config, Kind: Measured}
}

// ratio returns a ratio row num/den of metric name of two rows, with an
// optional target (op "" for none). A zero denominator gives no row.
func ratio(rows []Result, workload, name, num, den, op string, bound float64) (Result, bool) {
	var a, b float64
	var okA, okB bool
	for _, r := range rows {
		if r.Kind != Measured {
			continue
		}
		if r.Config == num {
			a, okA = r.Get(name)
		}
		if r.Config == den {
			b, okB = r.Get(name)
		}
	}
	if !okA || !okB || b == 0 {
		return Result{}, false
	}
	m := Metric{Name: name, Unit: "x", Value: a / b}
	if op != "" {
		m.Target = &Target{Op: op, Bound: bound}
	}
	return Result{Workload: workload, Config: num + " / " + den, Kind: Ratio, Metrics: []Metric{m}}, true
}

func addRatio(rows []Result, workload, name, num, den, op string, bound float64) []Result {
	if r, ok := ratio(rows, workload, name, num, den, op, bound); ok {
		return append(rows, r)
	}
	return rows
}

// Run runs the workloads one after another and returns all their rows.
// It stops at the first error or when ctx is done, returning the rows so
// far with the error.
func Run(ctx context.Context, ws []Workload, cfg Config, p Progress) ([]Result, error) {
	if p == nil {
		p = NopProgress{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var all []Result
	for _, w := range ws {
		if err := ctx.Err(); err != nil {
			return all, err
		}
		rows, err := w.Run(ctx, cfg, p)
		all = append(all, rows...)
		if err != nil {
			return all, fmt.Errorf("%s: %w", w.Name, err)
		}
	}
	return all, nil
}

// TotalSteps is the number of Progress steps Run announces for ws.
func TotalSteps(ws []Workload, cfg Config) int {
	n := 0
	for _, w := range ws {
		n += w.Steps(cfg)
	}
	return n
}
