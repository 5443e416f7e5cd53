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
		{"default is demo", nil, 0, []string{"invalidate  0 of 21", "rwsem       0 of 21", "none       21 of 21", "FOREIGN", "CORRUPT"}, ""},
		{"memfs demo", []string{"demo", "-backend", "memfs", "-modes", "invalidate"}, 0, []string{"invalidate  0 of"}, ""},
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
