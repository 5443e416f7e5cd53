package fuse

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holefs/holefs"
)

func TestParseTransport(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Transport
		err  bool
	}{
		{"auto", TransportAuto, false},
		{"uring", TransportURing, false},
		{"dev", TransportDev, false},
		{"", 0, true},
		{"io_uring", 0, true},
	} {
		got, err := ParseTransport(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseTransport(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
		if !c.err && got.String() != c.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
}

// TestTransportUsed: a uring mount serves its requests through the rings
// (the counter of requests they served grows with the work), a dev mount
// never does, and both give the same data.
func TestTransportUsed(t *testing.T) {
	for _, tr := range []Transport{TransportURing, TransportDev} {
		t.Run(tr.String(), func(t *testing.T) {
			m := mountFS(t, Options{Transport: tr, Cache: CacheDirect})
			if got := m.srv.Transport(); got != tr {
				t.Fatalf("Transport() = %v, want %v", got, tr)
			}
			before := m.srv.Stats().RingRequests
			data := []byte(strings.Repeat("ring", 4096))
			for i := range 20 {
				p := m.path("f" + string(rune('a'+i)))
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(p)
				if err != nil || string(got) != string(data) {
					t.Fatalf("read back %d bytes, %v", len(got), err)
				}
			}
			st := m.srv.Stats()
			served := st.RingRequests - before
			if st.Transport != tr {
				t.Errorf("Stats().Transport = %v, want %v", st.Transport, tr)
			}
			// 20 × (lookup, create, write, flush, release, open, read, ...)
			if tr == TransportURing && served < 100 {
				t.Errorf("the rings served %d requests of 20 files' writes and reads, want at least 100", served)
			}
			if tr == TransportDev && served != 0 {
				t.Errorf("a dev mount served %d requests through rings", served)
			}
		})
	}
}

// TestTransportUnavailable: where the kernel does not offer FUSE over
// io_uring, auto mounts through /dev/fuse and an explicit uring fails
// with one clear line, leaving nothing mounted. The switch is a file of
// the test's: flipping the machine's would disturb other mounts.
func TestTransportUnavailable(t *testing.T) {
	dir := t.TempDir()
	off := filepath.Join(dir, "enable_uring")
	if err := os.WriteFile(off, []byte("N\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, param, why string }{
		{"disabled", off, "it is disabled (as root: echo Y > " + off + ")"},
		{"missing", filepath.Join(dir, "none"), "this kernel has no " + filepath.Join(dir, "none")},
	} {
		t.Run(c.name, func(t *testing.T) {
			old := uringParam
			uringParam = c.param
			t.Cleanup(func() { uringParam = old })

			auto := t.TempDir()
			fsys, err := holefs.Open("", holefs.Options{SizeBytes: 64 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			srv, err := Mount(auto, fsys, Options{Transport: TransportAuto})
			if err != nil {
				t.Fatalf("auto: %v", err)
			}
			if got := srv.Transport(); got != TransportDev {
				t.Errorf("auto mounted with %v, want dev", got)
			}
			if err := os.WriteFile(auto+"/f", []byte("x"), 0o644); err != nil {
				t.Errorf("auto mount: %v", err)
			}
			if err := srv.Unmount(); err != nil {
				t.Fatal(err)
			}

			mp := t.TempDir()
			srv, err = Mount(mp, fsys, Options{Transport: TransportURing})
			if err == nil {
				srv.Unmount()
				t.Fatal("an explicit uring mount succeeded where io_uring is unavailable")
			}
			if !errors.Is(err, errNoURing) || !strings.Contains(err.Error(), c.why) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line saying %q", err, c.why)
			}
			if isMounted(t, mp) {
				t.Errorf("%s is mounted after the failed mount", mp)
			}
		})
	}
}

// isMounted reports whether dir is a mount point in /proc/self/mounts.
func isMounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

func init() {
	helpers["hammer"] = hammerHelper
}

// hammerHelper writes and reads a file in dir until it is killed or the
// mount goes.
func hammerHelper(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "hammer"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	os.Stdout.WriteString("ready\n")
	for i := int64(0); ; i++ {
		if _, err := f.WriteAt(buf, i%64*int64(len(buf))); err != nil {
			return err
		}
		if _, err := f.ReadAt(buf, i%64*int64(len(buf))); err != nil {
			return err
		}
	}
}

// TestURingUnmountInFlight: a uring mount detached and then left by a
// process in the middle of its I/O stops cleanly, with its goroutines and
// file descriptors gone.
func TestURingUnmountInFlight(t *testing.T) {
	testTransportOrSkip(t)
	fsys, err := holefs.Open("", holefs.Options{SizeBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	dir := t.TempDir()
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	srv, err := Mount(dir, fsys, Options{Transport: TransportURing, Cache: CacheDirect})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if isMounted(t, dir) {
			_ = srv.Detach()
		}
	}()
	cmd := exec.Command(os.Args[0], "-test.run=^$", dir)
	cmd.Env = childEnviron("hammer")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make([]byte, 6)
	if _, err := out.Read(ready); err != nil {
		t.Fatalf("hammer child: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for srv.Stats().RingRequests < 200 {
		select {
		case err := <-exited:
			t.Fatalf("hammer child stopped early: %v\n%s", err, stderr.String())
		case <-time.After(time.Millisecond):
		}
	}
	if err := srv.Detach(); err != nil {
		t.Fatal(err)
	}
	// The child's I/O is in flight: the connection ends under it.
	_ = cmd.Process.Kill()
	<-exited
	select {
	case <-srv.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop 30 s after its last user went")
	}
	// Goroutines end after Done is closed; wait for them, not for time.
	for i := 0; runtime.NumGoroutine() > goroutines; i++ {
		if i == 1000 {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before mounting:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := openFDs(t); got > fds {
		t.Errorf("%d file descriptors open, %d before mounting", got, fds)
	}
}

// testTransportOrSkip turns FUSE over io_uring on for the test, or skips.
func testTransportOrSkip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("FUSE over io_uring mounts with mount(2): run as root")
	}
	enableURing(t)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestURingAbort: a ring that fails ends the connection (its CPU's
// requests would otherwise wait until unmount): serving stops, and the
// mount answers ECONNABORTED or ENOTCONN at once, or is gone (ENOENT: where
// fusectl is not mounted, the abort is a forced, detached unmount).
func TestURingAbort(t *testing.T) {
	m := mountFS(t, Options{Transport: TransportURing})
	if err := os.WriteFile(m.path("f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.srv.ring.abort(errors.New("a test's failure"))
	select {
	case <-m.srv.Done():
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatal("serving did not end after the abort")
	}
	if _, err := os.Stat(m.path("f")); !errors.Is(err, syscall.ECONNABORTED) && !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat after the abort: %v; want ECONNABORTED, ENOTCONN or ENOENT", err)
	}
}
