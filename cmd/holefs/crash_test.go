package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

func TestCrashFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--frob"}, "flag provided but not defined: -frob"},
		{[]string{"--ops", "0"}, "--ops and --max-violations must be positive"},
		{[]string{"--blocks", "8"}, "--blocks at least 16"},
		{[]string{"--faults", "-1"}, "must not be negative"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--backend", "ext3"}, `--backend "ext3": want extentfs, ext2 or zonefs`},
		{[]string{"--backend", "ext2", "--data-checksums"}, "ext2 images have no data checksums"},
		{[]string{"--backend", "zonefs", "--faults", "1"}, "are for extentfs images, not zonefs"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"crash"}, tc.args...), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2\nstderr: %s", tc.args, code, errb.String())
		}
		if !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.stderr, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"crash", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: holefs crash") {
		t.Errorf("-h: exit %d\n%s", code, out.String())
	}
}

func TestCrashRun(t *testing.T) {
	lockcheck.Enable()
	var out, errb bytes.Buffer
	code := run([]string{"crash", "--states", "0", "--ops", "40", "--faults", "1", "--dir", t.TempDir()}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	for _, want := range []string{"crash states rebuilt, mounted and checked", "crash: 0 violations",
		"each failing one device op and all after it with EIO", "each failing one device op only", "; 0 violations;"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
}

// TestCrashRunZonefs: holefs crash --backend zonefs records a zonefs
// workload and checks its crash states.
func TestCrashRunZonefs(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"crash", "--backend", "zonefs", "--states", "0", "--ops", "40", "--quiet", "--dir", t.TempDir()}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	for _, want := range []string{"crash states rebuilt, mounted and checked", "crash: 0 violations"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
}
