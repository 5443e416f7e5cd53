package linear

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/internal/lockcheck"
)

func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	os.Exit(m.Run())
}

// TestLinearizable: in the protected modes every recorded history of
// reads, mapped reads, writes, punches and cache drops is linearizable.
func TestLinearizable(t *testing.T) {
	for _, backend := range []string{holefs.BackendExtent, holefs.BackendMemory} {
		for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockRWSem} {
			for seed := uint64(1); seed <= 2; seed++ {
				t.Run(fmt.Sprintf("%s/%s/seed%d", backend, mode, seed), func(t *testing.T) {
					res, err := Run(Config{Backend: backend, Mode: mode, Seed: seed, Window: 20 * time.Microsecond, OutDir: t.TempDir()})
					if err != nil {
						t.Fatal(err)
					}
					if !res.Linearizable {
						t.Fatalf("%d ops: not linearizable (inconclusive=%v); visualization: %s", res.Ops, res.Inconclusive, res.Visualization)
					}
				})
			}
		}
	}
}

// TestDetectsNone shows the check can fail: with no fill-path protection,
// some history within a bounded number of runs is not linearizable.
func TestDetectsNone(t *testing.T) {
	dir := t.TempDir()
	for seed := uint64(1); seed <= 40; seed++ {
		res, err := Run(Config{Backend: holefs.BackendExtent, Mode: holefs.LockNone, Seed: seed, Window: 20 * time.Microsecond, OutDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Linearizable && !res.Inconclusive {
			t.Logf("seed %d: non-linearizable history of %d ops; visualization written (%s)", seed, res.Ops, res.Visualization)
			if _, err := os.Stat(res.Visualization); err != nil {
				t.Fatalf("visualization missing: %v", err)
			}
			return
		}
	}
	t.Fatal("LockNone: 40 histories, all linearizable: the checker does not see the race")
}

// TestModel checks the model itself on hand-made histories.
func TestModel(t *testing.T) {
	op := func(c int, in input, out int, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: in, Output: out, Call: call, Return: ret}
	}
	w := func(p int, v byte) input { return input{kind: opWrite, page: p, value: v} }
	r := input{kind: opRead}
	punch := input{kind: opPunch}
	for _, tt := range []struct {
		name string
		h    []porcupine.Operation
		ok   bool
	}{
		{"read after write", []porcupine.Operation{op(0, w(0, 7), 0, 0, 1), op(1, r, 7, 2, 3)}, true},
		{"stale read after punch", []porcupine.Operation{op(0, w(0, 7), 0, 0, 1), op(0, punch, 0, 2, 3), op(1, r, 7, 4, 5)}, false},
		{"read overlapping punch", []porcupine.Operation{op(0, w(0, 7), 0, 0, 1), op(0, punch, 0, 2, 5), op(1, r, 7, 3, 4)}, true},
		{"foreign value", []porcupine.Operation{op(0, w(0, 7), 0, 0, 1), op(1, r, 0xEE, 2, 3)}, false},
		{"torn page", []porcupine.Operation{op(1, r, torn, 0, 1)}, false},
		{"pages independent", []porcupine.Operation{op(0, w(1, 9), 0, 0, 1), op(1, r, 0, 2, 3)}, true},
	} {
		if got := porcupine.CheckOperations(Model, tt.h); got != tt.ok {
			t.Errorf("%s: linearizable = %v, want %v", tt.name, got, tt.ok)
		}
	}
}
