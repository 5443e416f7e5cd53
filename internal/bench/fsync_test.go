package bench

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFsync checks the fsync workload's rows and that its configurations
// take turns: every phase runs all three targets once a turn, in an order
// reversed every turn, so that load drift falls on all of them alike.
func TestFsync(t *testing.T) {
	for _, tc := range []struct {
		duration time.Duration
		turns    int
	}{
		{100 * time.Millisecond, 1},
		{500 * time.Millisecond, 2},
	} {
		t.Run(fmt.Sprint(tc.duration), func(t *testing.T) {
			cfg := tinyConfig(t)
			cfg.Duration = tc.duration
			cfg.ImageDir = t.TempDir()
			if got := fsyncTurns(cfg); got != tc.turns {
				t.Fatalf("fsyncTurns = %d, want %d", got, tc.turns)
			}
			var p countingProgress
			rows, err := fsyncWL.Run(t.Context(), cfg, &p)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(p.steps), fsyncWL.Steps(cfg); got != want {
				t.Fatalf("announced %d steps %q, Steps says %d", got, p.steps, want)
			}
			targets := []string{"holefs image", "holefs image no-log", "plain files"}
			var want []string
			for _, ph := range fsyncPhases {
				for turn := range tc.turns {
					order := slices.Clone(targets)
					if turn%2 == 1 {
						slices.Reverse(order)
					}
					for _, tg := range order {
						s := "fsync " + tg + " " + ph.name
						if tc.turns > 1 {
							s += fmt.Sprintf(" (turn %d of %d)", turn+1, tc.turns)
						}
						want = append(want, s)
					}
				}
			}
			if !slices.Equal(p.steps, want) {
				t.Errorf("steps\n%q\nwant\n%q", p.steps, want)
			}

			positive := map[string][]string{}
			for _, ph := range fsyncPhases {
				ops := "fsyncs"
				if ph.metric == "create" {
					ops = "creates"
				}
				for _, tg := range targets {
					names := []string{ops, ph.metric + "_mean", ph.metric + "_p99"}
					if tg != "plain files" {
						names = append(names, "dev_flushes")
					}
					positive[tg+" "+ph.name] = names
				}
				positive["holefs image "+ph.name+" / plain files "+ph.name+" "+ph.metric+"_mean"] = []string{ph.metric + "_mean"}
			}
			by := checkRows(t, "fsync", rows, positive)
			// Checkpoints are counted on the image with a log only (a short
			// run may have none).
			for cfgName, r := range by {
				if r.Kind == Ratio {
					continue
				}
				v, ok := r.Get("checkpoints")
				logged := strings.HasPrefix(cfgName, "holefs image ") && !strings.HasPrefix(cfgName, "holefs image no-log ")
				if ok != logged || v < 0 {
					t.Errorf("%s: checkpoints = %v (present %v), want present %v", cfgName, v, ok, logged)
				}
			}
		})
	}
}
