package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

func TestTortureFlagErrors(t *testing.T) {
	lockcheck.Enable()
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--frob"}, "flag provided but not defined: -frob"},
		{[]string{"--mode", "fast"}, `--mode: unknown lock mode "fast"`},
		{[]string{"--backend", "zfs"}, `--backend: unknown backend "zfs"`},
		{[]string{"--cache-bytes", "lots"}, `--cache-bytes: bad size "lots"`},
		{[]string{"--duration", "-1s"}, "negative duration"},
		{[]string{"--duration", "0"}, "unbounded run: set a duration or an op count"},
		{[]string{"--ops", "-5"}, "negative op count"},
		{[]string{"--files", "0"}, "must be positive"},
		{[]string{"--file-blocks", "2"}, "file blocks 2 out of range"},
		{[]string{"--latency", "-1ms"}, "negative latency"},
		{[]string{"--workers", "read"}, `"read" is not kind=N`},
		{[]string{"--workers", "frob=1"}, `unknown worker kind "frob"`},
		{[]string{"--workers", "read=x"}, `bad count "x" for read`},
		{[]string{"--workers", "only:read=0"}, "no workers"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"torture"}, tc.args...), &out, &errb)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\nstderr: %s", tc.args, code, errb.String())
		}
		if !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.stderr, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("%v: stdout not empty: %s", tc.args, out.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"torture", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: holefs torture") {
		t.Errorf("-h: exit %d\n%s", code, out.String())
	}
	if code := run([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "holefs torture") {
		t.Errorf("help does not mention torture:\n%s", out.String())
	}
}

func TestTortureRun(t *testing.T) {
	lockcheck.Enable()
	var out, errb bytes.Buffer
	// stderr is not a terminal here: a progress line every 2 s.
	code := run([]string{"torture", "--duration", "2500ms", "--seed", "42", "--files", "2", "--file-blocks", "8",
		"--cache-bytes", "256KiB"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, s := range []string{"torture: mode invalidate, backend extentfs, seed 42", "ops: ", "0 violations, seed 42"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("stdout lacks %q:\n%s", s, out.String())
		}
	}
	last := strings.TrimSpace(out.String())
	last = last[strings.LastIndex(last, "\n")+1:]
	if !strings.HasPrefix(last, "torture: ") || !strings.Contains(last, " ops in ") || !strings.Contains(last, " ops/s), 0 violations, seed 42") {
		t.Errorf("last line is not the summary: %q", last)
	}
	if !strings.Contains(errb.String(), "torture: 2s: ") {
		t.Errorf("no progress line on stderr:\n%s", errb.String())
	}
}

func TestTortureOps(t *testing.T) {
	lockcheck.Enable()
	var out, errb bytes.Buffer
	code := run([]string{"torture", "--ops", "2000", "--duration", "0", "--backend", "memfs", "--mode", "rwsem",
		"--quiet", "--workers", "only:read=1,write=1,remove=1,fault=1"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "0 violations") || errb.Len() != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
}

// TestTortureViolation: in lock mode none the race is found, reported with
// the seed and the block's history, and the exit status is 1.
func TestTortureViolation(t *testing.T) {
	lockcheck.Enable()
	var out, errb bytes.Buffer
	code := run([]string{"torture", "--mode", "none", "--duration", "10s", "--seed", "5", "--stop-on-first",
		"--quiet", "--files", "2", "--file-blocks", "16", "--remove-delay", "20us",
		"--workers", "only:read=2,remove=2,write=1,neighbour=1"}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, s := range []string{"violations (", "seed 5", "history of the block", "by remove#"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("stdout lacks %q:\n%s", s, out.String())
		}
	}
	if !strings.Contains(errb.String(), "holefs torture: ") || !strings.Contains(errb.String(), "(seed 5)") {
		t.Errorf("stderr: %s", errb.String())
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "512KiB": 512 << 10, "1MiB": 1 << 20, "2m": 2 << 20, "1GiB": 1 << 30, "10b": 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1TiB", "1.5M"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) succeeded", in)
		}
	}
}

func TestTortureTargetFlagErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--target", dir, "--backend", "memfs"}, "--target excludes --backend"},
		{[]string{"--target", dir, "--mode", "none"}, "--target excludes --mode"},
		{[]string{"--target", dir, "--cache-bytes", "1MiB", "--latency", "1ms"}, "--target excludes --cache-bytes, --latency"},
		{[]string{"--target", dir, "--remove-delay", "1ms"}, "--target excludes --remove-delay"},
		{[]string{"--target", ""}, "--target: empty directory name"},
		{[]string{"--target", filepath.Join(dir, "nope")}, "no such file or directory"},
		{[]string{"--target", file}, "is not a directory"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"torture", "--duration", "1s"}, tc.args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.stderr) || out.Len() != 0 {
			t.Errorf("%v: exit %d, want 2 and %q\nstdout: %s\nstderr: %s", tc.args, code, tc.stderr, out.String(), errb.String())
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("files left in the target: %v", left)
	}
}

// TestTortureTarget runs against a real directory: no violation (the
// kernel is correct), the target named, its run directory removed.
func TestTortureTarget(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := run([]string{"torture", "--target", dir, "--duration", "1s", "--seed", "9", "--files", "2",
		"--file-blocks", "8", "--quiet"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, s := range []string{"torture: target " + dir + ", seed 9", "ops: ", "target " + dir + " (kernel page cache)",
		"0 violations, seed 9"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("stdout lacks %q:\n%s", s, out.String())
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("run directory left in the target: %v", left)
	}
}
