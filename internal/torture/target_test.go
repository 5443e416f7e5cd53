package torture

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// targetDuration is the length of each target run.
var targetDuration = 2 * time.Second

// runTarget runs the default worker mix against real files in dir. The
// kernel's filesystems are correct, so any violation is a bug of the
// torture (the adapter or the checker).
func runTarget(t *testing.T, dir string) Report {
	t.Helper()
	cfg := Config{Target: dir, Duration: targetDuration, Seed: 11, Files: 3, FileBlocks: 16}
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.ViolationCount > 0 {
		t.Fatalf("%d violations on %s:\n%s", rep.ViolationCount, dir, report(&rep))
	}
	for kind := range DefaultWorkers() {
		if rep.WorkerOps[kind] == 0 && !(kind == WorkDirect && rep.Unsupported["direct-read"] > 0) &&
			!(kind == WorkClean && rep.Unsupported["clean"] > 0) {
			t.Errorf("worker kind %s did no operation:\n%s", kind, report(&rep))
		}
	}
	for _, op := range []string{"read", "fault", "mmap", "munmap", "mapwrite", "readahead", "fadvise-willneed",
		"madvise-willneed", "write", "punch", "truncate-down", "truncate-up", "copy", "fsync",
		"nb-write", "nb-read", "nb-remove", "verify-read", "final-read"} {
		if rep.OpsByKind[op] == 0 {
			t.Errorf("no %s operation:\n%s", op, report(&rep))
		}
	}
	if rep.BlocksVerified == 0 {
		t.Errorf("nothing verified:\n%s", report(&rep))
	}
	// The run's directory is gone.
	left, _ := filepath.Glob(filepath.Join(dir, "holefs-torture-*"))
	if len(left) > 0 {
		t.Errorf("run directory left behind: %v", left)
	}
	t.Logf("%s\n%s", dir, report(&rep))
	return rep
}

// TestTargetDisk tortures the filesystem of t.TempDir() (ext4 or xfs on
// most machines; collapse and insert where it has them).
func TestTargetDisk(t *testing.T) {
	runTarget(t, t.TempDir())
}

// TestTargetTmpfs tortures tmpfs (/dev/shm): no zero range, collapse or
// insert (counted as unsupported), O_DIRECT since Linux 6.6.
func TestTargetTmpfs(t *testing.T) {
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		t.Skip("no /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "holefs-test-")
	if err != nil {
		t.Skipf("/dev/shm not writable: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	rep := runTarget(t, dir)
	for _, op := range []string{"collapse", "insert"} {
		if rep.Unsupported[op] == 0 && rep.OpsByKind[op] == 0 {
			t.Errorf("%s neither done nor reported unsupported: %v", op, rep.Unsupported)
		}
	}
}

func TestTargetConfig(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Target: filepath.Join(dir, "nope")}, "no such file or directory"},
		{Config{Target: f}, "is not a directory"},
		{Config{Target: dir, Backend: "memfs"}, "excludes backend"},
		{Config{Target: dir, CacheBytes: 1 << 20}, "excludes backend"},
		{Config{Target: dir, RemoveDelay: time.Millisecond}, "excludes backend"},
		{Config{Target: dir, FileLock: true}, "per-file invalidate lock"},
	} {
		tc.cfg.Duration = time.Second
		err := tc.cfg.Defaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{Target: dir, Duration: time.Second}.Defaults()
	if err := c.Validate(); err != nil || c.Backend != "" || c.CacheBytes != 0 {
		t.Errorf("target defaults %+v: %v", c, err)
	}
}

// TestTargetShiftsRunAlone: on a target, collapse and insert wait for
// every other call in flight, and every call on a file or a view waits
// for a collapse or insert in flight (ext4 misplaces blocks when they
// overlap; see targetFS). Each case holds the shift lock the way the
// other side would and checks that the call waits for it instead of
// running (it would return first if it did not take the lock).
func TestTargetShiftsRunAlone(t *testing.T) {
	tfs, err := newTargetFS(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer tfs.Close()
	fh, err := tfs.OpenFile("f", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	f := fh.(*targetFile)
	buf := make([]byte, 4*BlockSize)
	if _, err := f.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	mv, err := f.Mmap(0, 2*BlockSize, true)
	if err != nil {
		t.Fatal(err)
	}
	defer mv.Unmap()
	for _, tc := range []struct {
		name  string
		shift bool // the call shifts blocks (takes the lock exclusively)
		call  func() error
	}{
		{"collapse", true, func() error { return f.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, 0, BlockSize) }},
		{"insert", true, func() error { return f.Fallocate(unix.FALLOC_FL_INSERT_RANGE, 0, BlockSize) }},
		{"punch", false, func() error {
			return f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, BlockSize)
		}},
		{"pread", false, func() error { _, err := f.ReadAt(buf[:BlockSize], 0); return err }},
		{"pwrite", false, func() error { _, err := f.WriteAt(buf[:BlockSize], 0); return err }},
		{"ftruncate", false, func() error { return f.Truncate(4 * BlockSize) }},
		{"fadvise", false, func() error { return f.Fadvise(0, 0, unix.FADV_WILLNEED) }},
		{"readahead", false, func() error { return f.Readahead(0, BlockSize) }},
		{"fsync", false, f.Sync},
		{"syncfs", false, tfs.Sync},
		{"copy_file_range", false, func() error { _, err := f.CopyRange(f, 0, 2*BlockSize, BlockSize); return err }},
		{"mapped read", false, func() error { _, err := mv.ReadAt(buf[:BlockSize], 0); return err }},
		{"mapped write", false, func() error { _, err := mv.WriteAt(buf[:BlockSize], 0); return err }},
		{"madvise", false, func() error { return mv.Madvise(0, 0, unix.MADV_WILLNEED) }},
		{"msync", false, func() error { return mv.Sync(0, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.shift {
				tfs.shift.RLock() // another call in flight
			} else {
				tfs.shift.Lock() // a collapse or insert in flight
			}
			waited := make(chan bool, 1)
			tfs.waiting = func(shift bool) { waited <- shift }
			done := make(chan error, 1)
			go func() { done <- tc.call() }()
			var err error
			select {
			case shift := <-waited:
				if shift != tc.shift {
					t.Errorf("waited for the shift lock as a shift = %v, want %v", shift, tc.shift)
				}
				if tc.shift {
					tfs.shift.RUnlock()
				} else {
					tfs.shift.Unlock()
				}
				err = <-done
			case err = <-done:
				t.Errorf("ran while the other side held the shift lock (returned %v)", err)
				if tc.shift {
					tfs.shift.RUnlock()
				} else {
					tfs.shift.Unlock()
				}
			}
			tfs.waiting = nil
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		})
	}
}
