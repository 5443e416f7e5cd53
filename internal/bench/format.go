package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<40 && n%(1<<40) == 0:
		return fmt.Sprintf("%d TiB", n>>40)
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// fmtNum prints a number with about three significant digits.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case a >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case a >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Machine describes where a run happened.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	CPUModel   string `json:"cpu_model,omitempty"`
	MemTotal   string `json:"mem_total,omitempty"`
}

// ThisMachine describes the running machine.
func ThisMachine() Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func (m Machine) String() string {
	s := fmt.Sprintf("%s/%s, %d CPUs (GOMAXPROCS %d), %s", m.GOOS, m.GOARCH, m.CPUs, m.GOMAXPROCS, m.Go)
	if m.CPUModel != "" {
		s += ", " + m.CPUModel
	}
	if m.MemTotal != "" {
		s += ", " + m.MemTotal + " RAM"
	}
	return s
}

// Report is a whole run: what was asked, where, and the rows.
type Report struct {
	Command  string
	Started  time.Time
	Elapsed  time.Duration
	Machine  Machine
	Config   Config
	Workload []Workload
	Results  []Result
	Err      error
}

// WriteTable prints the report as one table per workload, with its ratios
// (and their targets) and notes below.
func (r *Report) WriteTable(w io.Writer) error {
	c := r.Config
	fmt.Fprintf(w, "holefs bench  %s\n", r.Started.Format(time.RFC3339))
	if r.Command != "" {
		fmt.Fprintf(w, "command: %s\n", r.Command)
	}
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "config:  duration %v per configuration, %d readers, %d writers, device latency %v + [0,%v) jitter (%s), cache %s, punch %v, seed %d\n",
		c.Duration, c.Readers, c.Writers, c.Latency, c.Jitter, deviceKind(c), fmtBytes(c.CacheBytes), c.Punch, c.Seed)
	for _, wl := range r.Workload {
		var rows, ratios []Result
		for _, res := range r.Results {
			if res.Workload != wl.Name {
				continue
			}
			if res.Kind == Ratio {
				ratios = append(ratios, res)
			} else {
				rows = append(rows, res)
			}
		}
		if len(rows) == 0 && len(ratios) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n== %s: %s\n", wl.Name, wl.Brief)
		var cols []string
		units := map[string]string{}
		for _, res := range rows {
			for _, m := range res.Metrics {
				if _, ok := units[m.Name]; !ok {
					cols = append(cols, m.Name)
					units[m.Name] = m.Unit
				}
			}
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "config\t")
		for _, col := range cols {
			fmt.Fprintf(tw, "%s\t", col)
		}
		fmt.Fprint(tw, "\n\t")
		for _, col := range cols {
			fmt.Fprintf(tw, "%s\t", units[col])
		}
		fmt.Fprint(tw, "\n")
		for _, res := range rows {
			fmt.Fprintf(tw, "%s\t", res.Config)
			for _, col := range cols {
				v, ok := res.Get(col)
				switch {
				case !ok:
					fmt.Fprint(tw, "-\t")
				case metricTarget(res, col) != nil:
					t := metricTarget(res, col)
					fmt.Fprintf(tw, "%s%s\t", fmtNum(v), map[bool]string{true: " ✓", false: " ✗"}[t.Met(v)])
				default:
					fmt.Fprintf(tw, "%s\t", fmtNum(v))
				}
			}
			fmt.Fprint(tw, "\n")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(ratios) > 0 {
			fmt.Fprintln(w, "ratios:")
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, res := range ratios {
				for _, m := range res.Metrics {
					verdict := ""
					if m.Target != nil {
						verdict = fmt.Sprintf("target %s %sx\t%s", m.Target.Op, fmtNum(m.Target.Bound), metText(m.Target.Met(m.Value)))
					}
					fmt.Fprintf(tw, "  %s\t%s\t%.2fx\t%s\n", res.Config, m.Name, m.Value, verdict)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		// Targets on measured rows.
		var targets []string
		for _, res := range rows {
			for _, m := range res.Metrics {
				if m.Target != nil {
					targets = append(targets, fmt.Sprintf("  %s %s = %s, target %s: %s", res.Config, m.Name, fmtNum(m.Value), m.Target,
						metText(m.Target.Met(m.Value))))
				}
			}
		}
		if len(targets) > 0 {
			fmt.Fprintln(w, "targets:")
			for _, t := range targets {
				fmt.Fprintln(w, t)
			}
		}
		var notes []string
		seen := map[string]bool{}
		for _, res := range rows {
			if res.Note != "" && !seen[res.Note] {
				seen[res.Note] = true
				notes = append(notes, res.Note)
			}
		}
		if len(notes) == 1 {
			fmt.Fprintf(w, "note: %s\n", notes[0])
		} else if len(notes) > 1 {
			fmt.Fprintln(w, "notes:")
			for _, res := range rows {
				if res.Note != "" && seen[res.Note] {
					fmt.Fprintf(w, "  %s: %s\n", res.Config, res.Note)
					seen[res.Note] = false
				}
			}
		}
	}
	if r.Elapsed > 0 {
		fmt.Fprintf(w, "\ntotal time %v\n", r.Elapsed.Round(time.Second/10))
	}
	if r.Err != nil {
		fmt.Fprintf(w, "\nstopped early: %v\n", r.Err)
	}
	return nil
}

func metText(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func deviceKind(c Config) string {
	if c.SleepDevice {
		return "time.Sleep device"
	}
	return "precise timer device"
}

func metricTarget(r Result, name string) *Target {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Target
		}
	}
	return nil
}

type jsonTarget struct {
	Op    string  `json:"op"`
	Bound float64 `json:"bound"`
	Met   bool    `json:"met"`
}

type jsonResult struct {
	Workload string                `json:"workload"`
	Config   string                `json:"config"`
	Kind     Kind                  `json:"kind"`
	Metrics  map[string]float64    `json:"metrics"`
	Units    map[string]string     `json:"units"`
	Targets  map[string]jsonTarget `json:"targets,omitempty"`
	Note     string                `json:"note,omitempty"`
}

// MarshalJSON writes metrics as an object of name to value, with their
// units and targets beside.
func (r Result) MarshalJSON() ([]byte, error) {
	j := jsonResult{Workload: r.Workload, Config: r.Config, Kind: r.Kind, Note: r.Note,
		Metrics: map[string]float64{}, Units: map[string]string{}}
	for _, m := range r.Metrics {
		v := m.Value
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = 0
		}
		j.Metrics[m.Name] = v
		j.Units[m.Name] = m.Unit
		if m.Target != nil {
			if j.Targets == nil {
				j.Targets = map[string]jsonTarget{}
			}
			j.Targets[m.Name] = jsonTarget{Op: m.Target.Op, Bound: m.Target.Bound, Met: m.Target.Met(m.Value)}
		}
	}
	return json.Marshal(j)
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	c := r.Config
	var names []string
	for _, wl := range r.Workload {
		names = append(names, wl.Name)
	}
	out := struct {
		Command   string    `json:"command,omitempty"`
		Started   time.Time `json:"started"`
		ElapsedS  float64   `json:"elapsed_s"`
		Machine   Machine   `json:"machine"`
		Config    any       `json:"config"`
		Workloads []string  `json:"workloads"`
		Results   []Result  `json:"results"`
		Error     string    `json:"error,omitempty"`
	}{
		Command: r.Command, Started: r.Started, ElapsedS: r.Elapsed.Seconds(), Machine: r.Machine,
		Config: map[string]any{
			"duration": c.Duration.String(), "readers": c.Readers, "writers": c.Writers,
			"latency": c.Latency.String(), "jitter": c.Jitter.String(), "device": deviceKind(c),
			"cache_bytes": c.CacheBytes, "punch": c.Punch, "seed": c.Seed,
		},
		Workloads: names, Results: r.Results,
	}
	if out.Results == nil {
		out.Results = []Result{}
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
