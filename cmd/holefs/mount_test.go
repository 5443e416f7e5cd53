package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/fuse"
	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain lets the test binary stand in for holefs when the mount
// command re-executes itself as a --daemon child.
func TestMain(m *testing.M) {
	if os.Getenv(daemonEnv) != "" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// needFUSE skips a test that mounts when FUSE is missing or not
// permitted here.
func needFUSE(t *testing.T) {
	t.Helper()
	if err := checkFUSE(); err != nil {
		t.Skipf("cannot mount here: %v", err)
	}
}

// isolate gives the test its own state and data directories.
func isolate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
}

// unmountAfter unmounts dir when the test ends, if it is still mounted.
func unmountAfter(t *testing.T, dir string) {
	t.Cleanup(func() {
		if _, ok, _ := fuse.FindMount(dir); ok {
			var out, errb bytes.Buffer
			if run([]string{"umount", "--lazy", dir}, &out, &errb) != 0 {
				t.Errorf("cleanup: umount %s: %s", dir, errb.String())
			}
		}
	})
}

// TestMountBadInput: every mistake is a one-line error naming the problem
// and the fix, with a non-zero exit status, and changes nothing.
func TestMountBadInput(t *testing.T) {
	lockcheck.Enable()
	isolate(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.img")
	if err := os.Mkdir(corrupt, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"data", "meta.db"} {
		if err := os.WriteFile(filepath.Join(corrupt, name), bytes.Repeat([]byte("junk"), 4096), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	zoned := filepath.Join(dir, "zoned.img")
	if err := holefs.Mkfs(zoned, holefs.MkfsOptions{Zoned: &blockdev.ZonedOptions{ZoneBlocks: 16, Zones: 4, Conventional: 1}}); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no mount point", []string{"mount", "--memory"}, 2, "missing MOUNTPOINT"},
		{"two mount points", []string{"mount", "--memory", mnt, mnt}, 2, "unexpected argument"},
		{"memory and image", []string{"mount", "--memory", "--image", corrupt, mnt}, 2, "exclusive"},
		{"bad cache mode", []string{"mount", "--memory", "--cache-mode", "fast", mnt}, 2, `unknown cache mode "fast"`},
		{"bad transport", []string{"mount", "--memory", "--transport", "io_uring", mnt}, 2, `unknown transport "io_uring" (want auto, uring or dev)`},
		{"bad size", []string{"mount", "--memory", "--size", "lots", mnt}, 2, "--size"},
		{"size 0", []string{"mount", "--memory", "--size", "0", mnt}, 2, "--size: a filesystem cannot have size 0"},
		{"cache size 0", []string{"mount", "--memory", "--cache-bytes", "0", mnt}, 2, "--cache-bytes: the page cache cannot have size 0"},
		{"size with an image", []string{"mount", "--image", corrupt, "--size", "1GiB", mnt}, 2, "--size is the size of a --memory filesystem"},
		{"size of the default image", []string{"mount", "--size", "1GiB", mnt}, 2, "--size is the size of a --memory filesystem"},
		{"no-discard in memory", []string{"mount", "--memory", "--no-discard", mnt}, 2, "--no-discard is for images"},
		{"zone-errors in memory", []string{"mount", "--memory", "--zone-errors", "zone-ro", mnt}, 2, "are for zoned images"},
		{"zone-errors on an unzoned image", []string{"mount", "--image", corrupt, "--zone-errors", "zone-ro", mnt}, 2, corrupt + " is not one"},
		{"explicit-open on the default image", []string{"mount", "--zone-explicit-open", mnt}, 2, "are for zoned images"},
		{"zone-errors on a zoned image", []string{"mount", "--image", zoned, "--zone-errors", "zone-ro", "--zone-explicit-open", filepath.Join(dir, "nope")}, 1, "does not exist"},
		{"zone-errors on a missing image", []string{"mount", "--image", filepath.Join(dir, "none.img"), "--zone-errors", "zone-ro", mnt}, 1, "no image at"},
		{"flags after the mount point", []string{"mount", mnt, "--memory", "--cache-mode", "fast"}, 2, `unknown cache mode "fast"`},
		{"help after the mount point", []string{"mount", mnt, "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"non-loopback metrics", []string{"mount", "--memory", "--metrics", "0.0.0.0:9100", mnt}, 2, "not a loopback"},
		{"metrics without port", []string{"mount", "--memory", "--metrics", "127.0.0.1", mnt}, 2, "not a loopback"},
		{"missing mount point", []string{"mount", "--memory", filepath.Join(dir, "nope")}, 1, "does not exist: create it (mkdir -p"},
		{"mount point is a file", []string{"mount", "--memory", file}, 1, "is not a directory"},
		{"already a mount point", []string{"mount", "--memory", "/proc"}, 1, "/proc is already a mount point (proc"},
		{"missing image", []string{"mount", "--image", filepath.Join(dir, "none.img"), mnt}, 1, "no image at"},
		{"umount of a plain directory", []string{"umount", mnt}, 1, "is not mounted"},
		{"umount of another filesystem", []string{"umount", "/proc"}, 1, "is not a holefs mount (it is proc)"},
		{"stat of a plain directory", []string{"stat", mnt}, 1, "is not a holefs mount of this user"},
	}
	if checkFUSE() == nil {
		tests = append(tests, struct {
			name   string
			args   []string
			code   int
			stderr string
		}{"corrupt image", []string{"mount", "--image", corrupt, mnt}, 1, "is corrupt"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errb.String(), tc.code, tc.stderr)
			}
			if code == 1 && strings.Count(strings.TrimSuffix(errb.String(), "\n"), "\n") != 0 {
				t.Errorf("error is not one line: %q", errb.String())
			}
			if _, ok, _ := fuse.FindMount(mnt); ok {
				t.Fatalf("%s got mounted", mnt)
			}
		})
	}
	// Nothing was created: no default image, no state.
	for _, p := range []string{defaultImagePath(), stateDir()} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s created by a failed command", p)
		}
	}
}

// TestMountForeground mounts --memory in the foreground (in this
// process), uses it, prints its stats, and unmounts it with holefs
// umount, which the mount command answers by flushing and returning 0.
func TestMountForeground(t *testing.T) {
	lockcheck.Enable()
	needFUSE(t)
	isolate(t)
	mnt := t.TempDir()
	unmountAfter(t, mnt)
	var mountErr bytes.Buffer
	var wg sync.WaitGroup
	code := -1
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = run([]string{"mount", "--memory", "--cache-mode", "writethrough", "--metrics", "127.0.0.1:0", mnt}, &bytes.Buffer{}, &mountErr)
	}()
	waitMounted(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(b) != "hello" {
		t.Fatalf("read back %q, %v", b, err)
	}
	var out, errb bytes.Buffer
	if c := run([]string{"stat", mnt}, &out, &errb); c != 0 {
		t.Fatalf("stat: exit %d: %s", c, errb.String())
	}
	for _, want := range []string{mnt + ": memory", "writethrough kernel cache", "hits", "invalidate lock waits", "FUSE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stat output lacks %q:\n%s", want, out.String())
		}
	}
	if c := run([]string{"umount", mnt}, &out, &errb); c != 0 {
		t.Fatalf("umount: exit %d: %s", c, errb.String())
	}
	wg.Wait()
	if code != 0 {
		t.Fatalf("mount exited %d: %s", code, mountErr.String())
	}
	if _, err := os.Stat(statePath(mnt, ".json")); err == nil {
		t.Error("state file left behind")
	}
}

// TestMountDaemonDefaultImage: holefs mount --daemon with no source
// creates the default image, returns once mounted, and the data is still
// there after holefs umount and a second mount.
func TestMountDaemonDefaultImage(t *testing.T) {
	lockcheck.Enable()
	needFUSE(t)
	isolate(t)
	mnt := t.TempDir()
	unmountAfter(t, mnt)
	mount := func() string {
		t.Helper()
		var out, errb bytes.Buffer
		if c := run([]string{"mount", "--daemon", mnt}, &out, &errb); c != 0 {
			t.Fatalf("mount --daemon: exit %d: %s", c, errb.String())
		}
		if _, ok, _ := fuse.FindMount(mnt); !ok {
			t.Fatal("mount --daemon returned before the mount was there")
		}
		return errb.String()
	}
	made := "holefs: created the default image " + defaultImagePath() + " (64 GiB, sparse"
	if said := mount(); !strings.Contains(said, made) {
		t.Errorf("the first mount does not say it made the default image: %q", said)
	}
	if _, err := os.Stat(filepath.Join(defaultImagePath(), "meta.db")); err != nil {
		t.Fatalf("default image not created: %v", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "kept"), []byte("across mounts"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	// A second mount of the same image fails: the image is in use.
	other := t.TempDir()
	if c := run([]string{"mount", "--daemon", other}, &out, &errb); c != 1 || !strings.Contains(errb.String(), "in use") {
		t.Errorf("second mount of the image: exit %d, %q", c, errb.String())
	}
	errb.Reset()
	if c := run([]string{"umount", mnt}, &out, &errb); c != 0 {
		t.Fatalf("umount: exit %d: %s", c, errb.String())
	}
	if said := mount(); strings.Contains(said, "created") {
		t.Errorf("the second mount says it made the image: %q", said)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "kept")); err != nil || string(b) != "across mounts" {
		t.Errorf("after remount: %q, %v", b, err)
	}
	// SIGTERM unmounts, flushes and exits.
	st, err := readState(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, mounted, _ := fuse.FindMount(mnt)
		_, serr := readState(mnt)
		if !mounted && serr != nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(statePath(mnt, ".log"))
			t.Fatalf("10 s after SIGTERM: mounted %v, state %v; daemon log:\n%s", mounted, serr, log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMounted waits until dir is a holefs mount.
func waitMounted(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if e, ok, _ := fuse.FindMount(dir); ok && e.FSType == "fuse.holefs" {
			if _, err := os.Stat(statePath(dir, ".json")); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after 10 s", dir)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMountDaemonRelativePaths: a --daemon child runs in /, so the
// parent resolves the mount point and --image against its own working
// directory before spawning it (it mounted on /mnt, from /srv, given mnt),
// with the flags before or after the mount point.
func TestMountDaemonRelativePaths(t *testing.T) {
	lockcheck.Enable()
	needFUSE(t)
	isolate(t)
	dir := t.TempDir()
	t.Chdir(dir)
	// Names no one has in /: without the fix the daemon fails, rather
	// than mounting over a system directory.
	if err := os.Mkdir("mnt-holefs-relative", 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if c := run([]string{"mkfs", "img-holefs-relative", "--size", "64M"}, &out, &errb); c != 0 {
		t.Fatalf("mkfs: exit %d: %s", c, errb.String())
	}
	mnt := filepath.Join(dir, "mnt-holefs-relative")
	tests := []struct {
		name   string
		args   []string
		source string
	}{
		{"image, flags first", []string{"mount", "--daemon", "--image", "img-holefs-relative", "mnt-holefs-relative"}, filepath.Join(dir, "img-holefs-relative")},
		{"image, flags last", []string{"mount", "mnt-holefs-relative", "--image=./img-holefs-relative", "--daemon"}, filepath.Join(dir, "img-holefs-relative")},
		{"memory", []string{"mount", "--memory", "--daemon", "mnt-holefs-relative"}, "memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unmountAfter(t, mnt)
			var out, errb bytes.Buffer
			if c := run(tt.args, &out, &errb); c != 0 {
				t.Fatalf("%q: exit %d: %s", tt.args, c, errb.String())
			}
			e, ok, err := fuse.FindMount(mnt)
			if !ok || err != nil || e.Source != tt.source {
				t.Fatalf("%q run in %s: mount on %s: %+v, %v, %v; want %s mounted there", tt.args, dir, mnt, e, ok, err, tt.source)
			}
			if tt.source != "memory" {
				// The loss: mkfs --force of the mounted image.
				errb.Reset()
				if c := run([]string{"mkfs", "--force", "img-holefs-relative"}, &out, &errb); c != 1 ||
					!strings.Contains(errb.String(), "the image is in use by process ") || !strings.Contains(errb.String(), "unmount it (holefs umount) or close it first") {
					t.Errorf("mkfs --force of the mounted image: exit %d, %q", c, errb.String())
				}
			}
			if c := run([]string{"umount", "mnt-holefs-relative"}, &out, &errb); c != 0 {
				t.Fatalf("umount: exit %d: %s", c, errb.String())
			}
		})
	}
}
