package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/holefs/holefs/internal/bench"
)

// benchBytes is a flag of a byte count: 67108864, 64MiB, 64M, 512k, 1G
// (suffixes are binary, with or without "iB"/"B").
type benchBytes int64

func (b *benchBytes) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *benchBytes) Set(s string) error {
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = benchBytes(v)
	return nil
}

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	l := strings.ToLower(t)
	shift := 0
	for _, suf := range []struct {
		s     string
		shift int
	}{{"kib", 10}, {"mib", 20}, {"gib", 30}, {"tib", 40}, {"kb", 10}, {"mb", 20}, {"gb", 30}, {"tb", 40},
		{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40}, {"b", 0}} {
		if strings.HasSuffix(l, suf.s) {
			l, shift = strings.TrimSpace(strings.TrimSuffix(l, suf.s)), suf.shift
			break
		}
	}
	n, err := strconv.ParseInt(l, 10, 64)
	if err != nil || n < 0 || (shift > 0 && n > (1<<62)>>shift) {
		return 0, fmt.Errorf("bad byte size %q (want e.g. 67108864, 64MiB, 512k, 1G)", s)
	}
	return n << shift, nil
}

// benchBar shows a workload run as a progress bar on stderr: one
// segment per configuration, filled as timed configurations run.
type benchBar struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	total int
	cur   int
}

const benchBarUnit = 1000

func newBenchBar(w io.Writer, total int) *benchBar {
	bar := progressbar.NewOptions(total*benchBarUnit,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetDescription("starting"))
	return &benchBar{bar: bar, total: total, cur: -1}
}

func (b *benchBar) Step(label string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cur++
	b.bar.Describe(fmt.Sprintf("[%d/%d] %-28s", b.cur+1, b.total, label))
	_ = b.bar.Set(min(b.cur, b.total) * benchBarUnit)
}

func (b *benchBar) Fraction(f float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Set(min(max(b.cur, 0)*benchBarUnit+int(f*benchBarUnit), b.total*benchBarUnit))
}

func (b *benchBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Finish()
}

const benchUsage = `Usage: holefs bench [flags]

Runs benchmark workloads against in-memory holefs filesystems, each under
several configurations (lock modes, goroutine counts, cache sizes, and
os.File on /dev/shm as a reference), and prints a table per workload with
the ratios the targets are stated in. A progress bar goes to stderr.

Workloads:
%s
Flags:
`

// benchCmd is `holefs bench`.
func benchCmd(args []string, stdout, stderr io.Writer) error {
	def := bench.DefaultConfig()
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	workloads := fl.String("workload", "all", "comma-separated workloads to run, or all")
	duration := fl.Duration("duration", def.Duration, "how long each configuration runs")
	readers := fl.Int("readers", def.Readers, "reader goroutines (mixed-rw, churn, memory; N of hit)")
	writers := fl.Int("writers", def.Writers, "writer goroutines of mixed-rw")
	latency := fl.Duration("latency", def.Latency, "device latency of every I/O")
	jitter := fl.Duration("jitter", def.Jitter, "extra uniform random device latency in [0, jitter)")
	cache := benchBytes(def.CacheBytes)
	fl.Var(&cache, "cache-bytes", "page cache size of mixed-rw and churn, and the middle size of memory (e.g. 64MiB)")
	punch := fl.Bool("punch", false, "add a punch/zero-range issuer (1 op/ms) to mixed-rw")
	seed := fl.Uint64("seed", def.Seed, "seed of every operation sequence")
	sleepDev := fl.Bool("sleep-device", false, "delay device I/O with time.Sleep as Options.Latency does (about 1 ms minimum on an idle process) instead of a precise timer")
	imageDir := fl.String("image-dir", "", "directory for image's durable image and plain-file reference (default $TMPDIR or /tmp)")
	asJSON := fl.Bool("json", false, "print the results as JSON instead of tables")
	pngPath := fl.String("png", "", "also write a plot of the results to this PNG file")
	svgPath := fl.String("svg", "", "also write a plot of the results to this SVG file")
	quiet := fl.Bool("quiet", false, "no progress bar")
	cpuProfile := fl.String("cpuprofile", "", "write a CPU profile of the run to this file")
	blockProfile := fl.String("blockprofile", "", "write a block (blocking) profile of the run to this file")
	mutexProfile := fl.String("mutexprofile", "", "write a mutex contention profile of the run to this file")
	fl.Usage = func() {
		var b strings.Builder
		for _, w := range bench.Workloads() {
			fmt.Fprintf(&b, "  %-12s %s\n", w.Name, w.Brief)
		}
		fmt.Fprintf(fl.Output(), benchUsage, b.String())
		fl.PrintDefaults()
	}
	if err := parseNone(fl, args, stdout, stderr); err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "holefs bench: "+format+"\n", a...)
		return errUsage
	}
	ws, err := bench.Select(*workloads)
	if err != nil {
		return bad("-workload: %v", err)
	}
	cfg := def
	cfg.Duration, cfg.Readers, cfg.Writers = *duration, *readers, *writers
	cfg.Latency, cfg.Jitter, cfg.CacheBytes = *latency, *jitter, int64(cache)
	cfg.Punch, cfg.Seed, cfg.SleepDevice, cfg.ImageDir = *punch, *seed, *sleepDev, *imageDir
	if err := cfg.Validate(); err != nil {
		return bad("%v", err)
	}
	// Open the plot files now: a bad path fails before a long run.
	type plotOut struct {
		f      *os.File
		format string
	}
	var plots []plotOut
	for _, o := range []struct{ path, format string }{{*pngPath, "png"}, {*svgPath, "svg"}} {
		if o.path == "" {
			continue
		}
		f, err := os.Create(o.path)
		if err != nil {
			for _, p := range plots {
				p.f.Close()
			}
			return bad("-%s: %v", o.format, err)
		}
		plots = append(plots, plotOut{f, o.format})
	}

	prof, err := startProfiles(*cpuProfile, *blockProfile, *mutexProfile)
	if err != nil {
		for _, p := range plots {
			p.f.Close()
		}
		return bad("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var prog bench.Progress = bench.NopProgress{}
	var bar *benchBar
	if !*quiet {
		bar = newBenchBar(stderr, bench.TotalSteps(ws, cfg))
		prog = bar
	}
	rep := &bench.Report{Command: "holefs bench " + strings.Join(args, " "), Started: time.Now(),
		Machine: bench.ThisMachine(), Config: cfg, Workload: ws}
	rep.Command = strings.TrimSpace(rep.Command)
	rep.Results, rep.Err = bench.Run(ctx, ws, cfg, prog)
	rep.Elapsed = time.Since(rep.Started)
	if perr := prof.stop(); perr != nil && rep.Err == nil {
		rep.Err = perr
	}
	if bar != nil {
		bar.finish()
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	for _, p := range plots {
		perr := bench.WritePlot(p.f, p.format, ws, rep.Results,
			fmt.Sprintf("holefs bench — %s — %s", rep.Started.Format("2006-01-02"), rep.Machine))
		if cerr := p.f.Close(); perr == nil {
			perr = cerr
		}
		if perr != nil && err == nil {
			err = fmt.Errorf("writing %s: %w", p.f.Name(), perr)
		}
	}
	if err != nil {
		return err
	}
	return rep.Err
}

// benchProfiles are the profiles a bench run writes.
type benchProfiles struct {
	cpu          *os.File
	block, mutex string
}

func startProfiles(cpu, block, mutex string) (*benchProfiles, error) {
	p := &benchProfiles{block: block, mutex: mutex}
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, fmt.Errorf("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("-cpuprofile: %v", err)
		}
		p.cpu = f
	}
	if block != "" {
		runtime.SetBlockProfileRate(1000) // one sample per microsecond blocked
	}
	if mutex != "" {
		runtime.SetMutexProfileFraction(10)
	}
	return p, nil
}

func (p *benchProfiles) stop() error {
	var first error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		first = p.cpu.Close()
	}
	for _, w := range []struct{ name, path string }{{"block", p.block}, {"mutex", p.mutex}} {
		if w.path == "" {
			continue
		}
		f, err := os.Create(w.path)
		if err == nil {
			err = pprof.Lookup(w.name).WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil && first == nil {
			first = fmt.Errorf("-%sprofile: %w", w.name, err)
		}
	}
	return first
}
