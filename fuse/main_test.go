package fuse

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/internal/lockcheck"
)

// childEnv names the helper a re-executed test binary runs instead of the
// tests (see runChild).
const childEnv = "HOLEFS_FUSE_TEST_CHILD"

// TestMain turns the lock-order checker on, or runs a child helper.
func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		flag.Parse()
		os.Exit(runHelper(name, flag.Arg(0)))
	}
	lockcheck.Enable()
	code := m.Run()
	restoreURingParam()
	os.Exit(code)
}

// mounted is a holefs filesystem mounted for one test.
type mounted struct {
	dir  string     // the mount point
	fsys *holefs.FS // the same filesystem, through the library
	srv  *Server
}

// path returns the path of name in the mount.
func (m *mounted) path(name string) string { return m.dir + "/" + name }

// mountFS mounts a fresh in-memory filesystem on a temporary directory. It
// skips the test, saying why, only when FUSE is missing or mounting is not
// permitted; it always unmounts when the test ends, failed or panicked,
// detaching the mount if files are still open.
func mountFS(t testing.TB, opts Options) *mounted {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE on this machine (%v): load the fuse module or give the container /dev/fuse", err)
	}
	fsys, err := holefs.Open("", holefs.Options{SizeBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return mountOn(t, fsys, opts)
}

// mountOn mounts fsys on a temporary directory, as mountFS, and closes fsys
// when the test ends.
func mountOn(t testing.TB, fsys *holefs.FS, opts Options) *mounted {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		_ = fsys.Close()
		t.Skipf("no FUSE on this machine (%v): load the fuse module or give the container /dev/fuse", err)
	}
	if opts.Transport == TransportAuto {
		opts.Transport = testTransport(t)
	}
	if opts.Transport == TransportURing {
		enableURing(t)
	}
	dir := t.TempDir()
	srv, err := Mount(dir, fsys, opts)
	if err != nil {
		_ = fsys.Close()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || strings.Contains(err.Error(), "fusermount") {
			t.Skipf("mounting is not permitted here: %v", err)
		}
		t.Fatalf("Mount: %v", err)
	}
	if srv.Transport() != opts.Transport && opts.Transport != TransportAuto {
		t.Errorf("mounted with transport %v, asked for %v", srv.Transport(), opts.Transport)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("Unmount: %v; detaching", err)
			if err := srv.Detach(); err != nil {
				t.Errorf("Detach: %v", err)
			}
			select {
			case <-srv.Done():
			case <-time.After(10 * time.Second):
				t.Errorf("server still running 10 s after detaching")
				return // leave fsys open: the server may still use it
			}
		}
		if err := fsys.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &mounted{dir: dir, fsys: fsys, srv: srv}
}

// forEachMode runs fn in a subtest per cache mode, each with its own mount.
func forEachMode(t *testing.T, fn func(t *testing.T, m *mounted)) {
	for _, mode := range []CacheMode{CacheWriteback, CacheWritethrough, CacheDirect} {
		t.Run(mode.String(), func(t *testing.T) {
			fn(t, mountFS(t, Options{Cache: mode}))
		})
	}
}

// childEnviron is the environment of a child running helper. A child of a
// -race test binary would sleep a second at exit (the race runtime's
// atexit_sleep_ms, a wait for reports from other goroutines), which over
// the hundreds of children of the conformance and errno tables is most of
// their run time. A race is reported when it happens; the sleep only gives
// goroutines still running at exit the time to race.
func childEnviron(helper string) []string {
	return append(os.Environ(), childEnv+"="+helper, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// runChild runs a helper (see runHelper) in a child process: a test
// binary whose page faults wait for this process's FUSE server would
// otherwise stall the Go runtime, as a fault is not a system call the
// scheduler can step around (a garbage collection waiting for the
// faulting thread would wait for the server it stopped).
func runChild(t *testing.T, helper string, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = childEnviron(helper)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s %v: %v\n%s", helper, args, err, out)
	}
	return string(out)
}

// runHelper runs in the child process; arg is its last argument.
func runHelper(name, arg string) int {
	h, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
		return 2
	}
	if err := h(arg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// helpers are what runChild can run.
var helpers = map[string]func(arg string) error{}

// errnoOf returns the errno of a system call's error.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// wantErrno fails the test unless err is errno (0: no error).
func wantErrno(t testing.TB, err error, errno syscall.Errno, what string) {
	t.Helper()
	if errno == 0 {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return
	}
	if got := errnoOf(err); got != errno {
		t.Errorf("%s: err = %v, want %v (%s)", what, err, errno, unix.ErrnoName(errno))
	}
}

// mountTmpfs mounts a fresh tmpfs, with mount(2)'s flags and data, on a
// temporary directory for the rest of the test: the reference whose
// errnos and results holefs must match. It skips the test, saying why,
// where mounting is not permitted.
func mountTmpfs(t testing.TB, flags uintptr, data string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, data); err != nil {
		t.Skipf("cannot mount a tmpfs to compare with (%v): run as root", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount tmpfs: %v", err)
		}
	})
	return dir
}

// otherUserBinary returns a copy of the test binary that other users can
// run: the test's own may sit in a directory only root can reach.
func otherUserBinary(t *testing.T) (string, error) {
	dir := t.TempDir()
	reachable(t, dir)
	bin := filepath.Join(dir, "other-user.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", err
	}
	if err := dst.Close(); err != nil {
		return "", err
	}
	return bin, nil
}

// reachable lets other users through dir and every directory above it up
// to the temporary directory: the testing package makes each test's 0700.
// Each keeps its permission bits plus r-x for group and others; the
// set-ID and sticky bits go.
func reachable(t testing.TB, dir string) {
	t.Helper()
	for d := dir; strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, st.Mode().Perm()|0o055); err != nil {
			t.Fatal(err)
		}
	}
}
