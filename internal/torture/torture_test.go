package torture

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/holefs/holefs"
)

func report(r *Report) string {
	var sb strings.Builder
	FormatReport(&sb, r)
	return sb.String()
}

func run(t *testing.T, cfg Config) Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// TestCorrectModes runs the full worker mix in the protected lock modes on
// both backends: no violation, and every worker kind got work done. The
// remover delay widens the window the invalidate lock closes (the same
// knob makes LockNone fail in milliseconds, see TestDetection).
func TestCorrectModes(t *testing.T) {
	dur := 10 * time.Second // the bounded torture of CI: about 40 s in all
	if testing.Short() {
		dur = time.Second
	}
	for _, backend := range []string{holefs.BackendExtent, holefs.BackendMemory, holefs.BackendLog} {
		for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockRWSem} {
			if backend == holefs.BackendLog && mode == holefs.LockRWSem {
				continue // the fill paths are the same code; CI time goes to invalidate
			}
			t.Run(backend+"/"+mode.String(), func(t *testing.T) {
				cfg := Config{Backend: backend, Mode: mode, Duration: dur, Seed: 7,
					Files: 3, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond}
				rep := run(t, cfg)
				if rep.ViolationCount > 0 {
					t.Fatalf("%d violations in mode %v:\n%s", rep.ViolationCount, mode, report(&rep))
				}
				for kind := range DefaultWorkers() {
					if kind == WorkClean && backend != holefs.BackendLog {
						if rep.Unsupported["clean"] == 0 {
							t.Errorf("%s: clean not reported as unsupported", backend)
						}
						continue
					}
					if rep.WorkerOps[kind] == 0 && !(kind == WorkDirect && backend == holefs.BackendMemory) {
						t.Errorf("worker kind %s did no operation:\n%s", kind, report(&rep))
					}
				}
				want := []string{"read", "fault", "mapwrite", "readahead", "fadvise-willneed", "madvise-willneed",
					"write", "punch", "truncate-down", "copy", "nb-write", "verify-read", "final-read"}
				if backend == holefs.BackendLog {
					want = append(want, "clean")
				}
				if backend != holefs.BackendMemory {
					want = append(want, "direct-read", "direct-write", "zero", "collapse", "insert")
				} else {
					for _, op := range []string{"direct-read", "direct-write"} {
						if rep.Unsupported[op] == 0 {
							t.Errorf("memfs: %s not reported as unsupported: %v", op, rep.Unsupported)
						}
					}
				}
				for _, op := range want {
					if rep.OpsByKind[op] == 0 {
						t.Errorf("no %s operation:\n%s", op, report(&rep))
					}
				}
				if rep.BlocksVerified == 0 || rep.Cache.Evictions == 0 && backend != holefs.BackendMemory {
					t.Errorf("nothing verified or no cache pressure:\n%s", report(&rep))
				}
				t.Logf("%s", rep.Summary())
			})
		}
	}
}

// TestLogDetection: on the log-structured backend, where every overwrite
// and every cleaner pass frees blocks, LockNone must show violations.
func TestLogDetection(t *testing.T) {
	cfg := Config{Backend: holefs.BackendLog, Mode: holefs.LockNone, Duration: 10 * time.Second, Seed: 13,
		Files: 3, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond, StopOnFirst: true}
	rep := run(t, cfg)
	if rep.ViolationCount == 0 {
		t.Fatalf("LockNone on logfs: no violation in %v:\n%s", cfg.Duration, report(&rep))
	}
	t.Logf("%s", rep.Summary())
}

// TestPassthrough runs the full mix on the passthrough backend over a
// directory of the test's filesystem (ext4 or xfs: every fallocate mode)
// and of /dev/shm when there is one (tmpfs: no zero range, collapse or
// insert, which must be refused): no violation in invalidate mode, the
// backing files right when read directly and after reopening; and in
// LockNone, stale data. Nothing reuses freed blocks there (the backing
// filesystem owns them), but a fill that read a range before a punch
// removed it still caches what the punch removed.
func TestPassthrough(t *testing.T) {
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	bases := map[string]string{"tempdir": t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		bases["shm"] = "/dev/shm"
	}
	for name, base := range bases {
		for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockNone} {
			t.Run(name+"/"+mode.String(), func(t *testing.T) {
				cfg := Config{Backend: holefs.BackendPassthrough, BackingDir: base, Mode: mode, Duration: dur, Seed: 17,
					Files: 3, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond}
				if mode == holefs.LockNone {
					cfg.StopOnFirst, cfg.StopKinds, cfg.Duration = true, []string{KindStale}, 10*time.Second
				}
				rep := run(t, cfg)
				if mode == holefs.LockNone {
					if rep.ByKind[KindStale] == 0 {
						t.Fatalf("LockNone on passthrough: no stale data in %v:\n%s", cfg.Duration, report(&rep))
					}
					t.Logf("%s; first stale data after %v", rep.Summary(), rep.FirstByKind[KindStale].Round(time.Millisecond))
					return
				}
				if rep.ViolationCount > 0 {
					t.Fatalf("%d violations:\n%s", rep.ViolationCount, report(&rep))
				}
				// finalCheck twice (cache, dropped cache, O_DIRECT), plus
				// the direct read of each backing file.
				if got, want := rep.OpsByKind["final-read"], int64(7*cfg.Files); got != want {
					t.Errorf("%d final reads, want %d (backing files not checked?):\n%s", got, want, report(&rep))
				}
				for _, op := range []string{"read", "fault", "write", "direct-read", "direct-write", "punch", "truncate-down", "copy"} {
					if rep.OpsByKind[op] == 0 {
						t.Errorf("no %s operation:\n%s", op, report(&rep))
					}
				}
				for _, op := range []string{"zero", "collapse", "insert"} {
					if rep.OpsByKind[op] == 0 && rep.Unsupported[op] == 0 {
						t.Errorf("no %s operation, supported or refused:\n%s", op, report(&rep))
					}
				}
				t.Logf("%s", rep.Summary())
			})
		}
	}
}

// TestImage runs the full mix on a durable image of each backend that has
// one (ext2's commits also write out indirect blocks, copy on write),
// committed every 5 ms so commits and the freed-block quarantine race the
// workers, then checks the reopened image; and shows the same run in
// LockNone finds violations.
func TestImage(t *testing.T) {
	dur := 5 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	for _, backend := range []string{holefs.BackendExtent, holefs.BackendExt2} {
		for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockNone} {
			t.Run(backend+"/"+mode.String(), func(t *testing.T) { testImage(t, backend, mode, dur) })
		}
	}
}

func testImage(t *testing.T, backend string, mode holefs.LockMode, dur time.Duration) {
	cfg := Config{Backend: backend, Image: true, Mode: mode, Duration: dur, Seed: 11,
		Files: 3, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond}
	if mode == holefs.LockNone {
		cfg.StopOnFirst, cfg.Duration = true, 10*time.Second
	}
	rep := run(t, cfg)
	switch {
	case mode == holefs.LockNone && rep.ViolationCount == 0:
		t.Fatalf("LockNone on an image: no violation in %v:\n%s", cfg.Duration, report(&rep))
	case mode != holefs.LockNone && rep.ViolationCount > 0:
		t.Fatalf("%d violations:\n%s", rep.ViolationCount, report(&rep))
	case mode != holefs.LockNone && rep.OpsByKind["final-read"] < 2*int64(cfg.Files):
		t.Fatalf("the reopened image was not checked:\n%s", report(&rep))
	}
	t.Logf("%s", rep.Summary())
}

// TestDetection proves the checker sees the race: with LockNone, each fill
// path alone (plus removers, a writer to keep data around, the neighbour
// reusing freed blocks, cache pressure, and for the fill paths that return
// no data a verifier that cannot race itself) must produce stale or
// foreign data within 10 s.
func TestDetection(t *testing.T) {
	for _, fill := range FillPaths {
		t.Run(fill, func(t *testing.T) {
			w := map[string]int{fill: 2, WorkRemove: 2, WorkWrite: 1, WorkNeighbour: 1}
			if fill != WorkRead && fill != WorkFault {
				w[WorkVerify] = 1
			}
			cfg := Config{Mode: holefs.LockNone, Duration: 10 * time.Second, Seed: 1, Files: 2, FileBlocks: 16,
				CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond, Workers: w,
				StopOnFirst: true, StopKinds: []string{KindStale, KindForeign}}
			rep := run(t, cfg)
			first := time.Duration(0)
			for _, k := range []string{KindStale, KindForeign} {
				if d, ok := rep.FirstByKind[k]; ok && (first == 0 || d < first) {
					first = d
				}
			}
			if first == 0 {
				t.Fatalf("no stale or foreign data in %v with only %s racing:\n%s", rep.Elapsed, fill, report(&rep))
			}
			t.Logf("%s: detected after %v (%d ops); violations by kind %v", fill, first.Round(time.Microsecond), rep.Ops, rep.ByKind)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Duration: time.Second}.Defaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"backend", func(c *Config) { c.Backend = "zfs" }, `unknown backend "zfs"`},
		{"mode", func(c *Config) { c.Mode = 9 }, "unknown lock mode"},
		{"unbounded", func(c *Config) { c.Duration, c.Ops = 0, 0 }, "unbounded run"},
		{"negative duration", func(c *Config) { c.Duration = -1 }, "negative duration"},
		{"files", func(c *Config) { c.Files = 2000 }, "files 2000 out of range"},
		{"blocks", func(c *Config) { c.FileBlocks = 2 }, "file blocks 2 out of range"},
		{"worker kind", func(c *Config) { c.Workers = map[string]int{"frob": 1} }, `unknown worker kind "frob"`},
		{"worker count", func(c *Config) { c.Workers = map[string]int{WorkRead: -1} }, "out of range"},
		{"no workers", func(c *Config) { c.Workers = map[string]int{WorkRead: 0} }, "no workers"},
		{"latency", func(c *Config) { c.Latency = -time.Second }, "negative latency"},
		{"backing dir", func(c *Config) { c.BackingDir = os.TempDir() }, "a backing directory needs the passthrough backend"},
		{"dax on memfs", func(c *Config) { c.DAX, c.Backend = true, holefs.BackendMemory }, "DAX needs the extentfs or ext2 backend"},
		{"dax with latency", func(c *Config) { c.DAX, c.Latency = true, time.Millisecond }, "DAX needs the extentfs or ext2 backend"},
		{"image on memfs", func(c *Config) { c.Image, c.Backend = true, holefs.BackendMemory }, "an image needs the extentfs or ext2 backend"},
	} {
		c := ok
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := Run(context.Background(), Config{}, nil); err == nil {
		t.Error("Run of a zero Config (unbounded) succeeded")
	}
}

// TestOpsBound: a run bounded by an op count stops near it, and progress
// is reported.
func TestOpsBound(t *testing.T) {
	var calls int
	var last Stats
	rep, err := Run(context.Background(), Config{Ops: 3000, Seed: 3, Files: 2, FileBlocks: 8,
		Workers: map[string]int{WorkRead: 1, WorkWrite: 1, WorkRemove: 1}}, func(s Stats) { calls++; last = s })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops < 3000 || rep.Ops > 3000+100 {
		t.Errorf("ran %d ops, want about 3000", rep.Ops)
	}
	if rep.ViolationCount != 0 {
		t.Errorf("violations:\n%s", report(&rep))
	}
	if calls == 0 || last.Ops == 0 {
		t.Errorf("progress called %d times, last %+v", calls, last)
	}
	if !strings.Contains(rep.Summary(), "violations, seed 3") {
		t.Errorf("summary %q", rep.Summary())
	}
}

// TestCancel: cancelling the context ends a run early, cleanly.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	start := time.Now()
	rep, err := Run(ctx, Config{Duration: time.Minute, Files: 2, FileBlocks: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 20*time.Second || rep.Ops == 0 {
		t.Errorf("cancelled run took %v, %d ops", time.Since(start), rep.Ops)
	}
	if rep.OpsByKind["final-read"] == 0 {
		t.Errorf("no final check after cancel: %v", rep.OpsByKind)
	}
}
