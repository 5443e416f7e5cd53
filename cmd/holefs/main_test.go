package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

func TestRun(t *testing.T) {
	lockcheck.Enable()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr string
	}{
		{"default is demo", nil, 0, []string{"invalidate  0 of 29", "rwsem       0 of 29", "none       28 of 29", "DAX fault  truncate", "FOREIGN", "CORRUPT", "LockNone has no fill-path protection and shows the bug."}, ""},
		{"memfs demo", []string{"demo", "-backend", "memfs", "-modes", "invalidate"}, 0, []string{"invalidate  0 of 10"}, ""},
		{"memfs demo without the race", []string{"demo", "-backend", "memfs"}, 0, []string{"none        0 of 10", "yet exposed nothing here: on memfs"}, ""},
		{"help", []string{"help"}, 0, []string{"Usage:"}, ""},
		{"unknown command", []string{"frobnicate"}, 2, nil, `unknown command "frobnicate"`},
		{"bad mode", []string{"demo", "-modes", "fast"}, 2, nil, `unknown lock mode "fast"`},
		{"bad backend", []string{"demo", "-backend", "zfs"}, 2, nil, `unknown backend "zfs"`},
		{"stray argument", []string{"demo", "x"}, 2, nil, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errb.String())
			}
		})
	}
}

// commands are every command of holefs.
var commands = []string{"demo", "torture", "bench", "crash", "mkfs", "fsck", "fstrim", "mount", "umount", "stat", "help"}

// TestHelp: holefs --help lists every command on stdout, and every
// command's --help (and holefs help CMD) prints its usage on stdout and
// exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || errb.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
		for _, cmd := range commands {
			if !strings.Contains(out.String(), "  holefs "+cmd+" ") && !strings.Contains(out.String(), "  holefs ["+cmd+"] ") {
				t.Errorf("%q does not list %s:\n%s", args, cmd, out.String())
			}
		}
	}
	for _, cmd := range commands[:len(commands)-1] {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 0 || errb.Len() != 0 {
				t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
			}
			if !strings.HasPrefix(out.String(), "Usage: holefs "+cmd+" ") {
				t.Errorf("%q: stdout is not %s's usage:\n%s", args, cmd, out.String())
			}
		}
	}
	for _, args := range [][]string{{"help", "frob"}, {"help", "mkfs", "fsck"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and an error", args, code, errb.String())
		}
	}
}
