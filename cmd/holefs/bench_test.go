package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

func TestBenchFlagErrors(t *testing.T) {
	lockcheck.Enable()
	dir := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"unknown workload", []string{"--workload", "fast"}, `unknown workload "fast"`},
		{"unknown in a list", []string{"--workload", "hit,fast"}, `unknown workload "fast"`},
		{"empty workload", []string{"--workload", ","}, "no workload"},
		{"zero duration", []string{"--duration", "0s"}, "duration must be positive"},
		{"bad duration", []string{"--duration", "soon"}, "invalid value"},
		{"no readers", []string{"--readers", "0"}, "readers must be at least 1"},
		{"negative writers", []string{"--writers", "-1"}, "writers must not be negative"},
		{"negative latency", []string{"--latency", "-1us"}, "must not be negative"},
		{"tiny cache", []string{"--cache-bytes", "4KiB"}, "cache bytes must be at least"},
		{"bad cache size", []string{"--cache-bytes", "lots"}, "bad byte size"},
		{"unknown flag", []string{"--fast"}, "flag provided but not defined"},
		{"stray argument", []string{"hit"}, `unexpected argument "hit"`},
		{"unwritable png", []string{"--png", filepath.Join(dir, "no", "such", "dir.png")}, "-png"},
		{"unwritable cpuprofile", []string{"--cpuprofile", filepath.Join(dir, "no", "p")}, "-cpuprofile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"bench"}, tt.args...), &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errb.String())
			}
			if out.Len() != 0 {
				t.Errorf("stdout not empty:\n%s", out.String())
			}
		})
	}
}

func TestBenchHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "-h"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	for _, s := range []string{"Usage: holefs bench", "mixed-rw", "punch-scale", "-cache-bytes", "-json", "-png"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help lacks %q:\n%s", s, out.String())
		}
	}
	out.Reset()
	run([]string{"help"}, &out, &errb)
	if !strings.Contains(out.String(), "holefs bench") {
		t.Errorf("usage does not list bench:\n%s", out.String())
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "64MiB": 64 << 20, "64M": 64 << 20, "512k": 512 << 10, "1G": 1 << 30, "2 GiB": 2 << 30, "100b": 100} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5G", "99999999999T"} {
		if _, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) accepted", in)
		}
	}
}

// TestBenchJSON runs the workloads whose sizes follow --cache-bytes at the
// smallest cache, briefly, with every output: the JSON parses and has
// rows, the plots are written, the progress bar goes to stderr only.
func TestBenchJSON(t *testing.T) {
	lockcheck.Enable()
	dir := t.TempDir()
	png, svg := filepath.Join(dir, "b.png"), filepath.Join(dir, "b.svg")
	var out, errb bytes.Buffer
	args := []string{"bench", "--workload", "mixed-rw,seq,churn,memory", "--duration", "100ms", "--cache-bytes", "256KiB",
		"--readers", "2", "--latency", "20us", "--jitter", "0s", "--punch", "--json", "--png", png, "--svg", svg}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	var rep struct {
		Command string         `json:"command"`
		Config  map[string]any `json:"config"`
		Results []struct {
			Workload string             `json:"workload"`
			Config   string             `json:"config"`
			Kind     string             `json:"kind"`
			Metrics  map[string]float64 `json:"metrics"`
			Units    map[string]string  `json:"units"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
	}
	if !strings.Contains(rep.Command, "--workload mixed-rw,seq,churn,memory") || rep.Config["cache_bytes"] != float64(256<<10) {
		t.Errorf("command %q config %v", rep.Command, rep.Config)
	}
	seen := map[string]int{}
	for _, r := range rep.Results {
		seen[r.Workload]++
		if len(r.Metrics) == 0 && r.Kind != "measured" {
			t.Errorf("%s %s: no metrics", r.Workload, r.Config)
		}
		for name := range r.Metrics {
			if r.Units[name] == "" {
				t.Errorf("%s %s %s: no unit", r.Workload, r.Config, name)
			}
		}
		if r.Workload == "mixed-rw" && r.Kind == "measured" && !(r.Metrics["reader_ops"] > 0) {
			t.Errorf("mixed-rw %s: reader_ops %v", r.Config, r.Metrics["reader_ops"])
		}
	}
	for _, w := range []string{"mixed-rw", "seq", "churn", "memory"} {
		if seen[w] == 0 {
			t.Errorf("no %s rows", w)
		}
	}
	for _, f := range []string{png, svg} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("plot %s: %v", f, err)
		}
	}

	// The table form of a quick run, without progress bar.
	out.Reset()
	errb.Reset()
	if code := run([]string{"bench", "--workload", "churn", "--duration", "20ms", "--cache-bytes", "256KiB", "--quiet"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	for _, s := range []string{"== churn", "uniform holefs CLOCK", "zipf sim LRU", "SIMULATION"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
	if errb.Len() != 0 {
		t.Errorf("--quiet wrote to stderr:\n%s", errb.String())
	}
}
