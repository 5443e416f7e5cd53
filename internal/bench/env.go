package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/pagecache"
)

// env is a filesystem on an in-memory device behind a latencyDevice, or
// on a passthrough directory whose files' devices are.
type env struct {
	fs  *holefs.FS
	dev *latency
	// backing is a passthrough env's directory, removed by close.
	backing string
}

// newEnv opens an extentfs filesystem whose memory device holds devBytes
// (rounded up, plus room for metadata-free slack), with no device latency
// yet: callers fill files fast, then call measure.
func newEnv(cfg Config, mode holefs.LockMode, cacheBytes, devBytes int64) (*env, error) {
	return newBackendEnv(cfg, holefs.BackendExtent, mode, cacheBytes, devBytes)
}

// daxBackend names, among newBackendEnv's backends, extentfs in DAX mode.
const daxBackend = "dax"

// newBackendEnv is newEnv on another backend: logfs on a device,
// passthrough (newPassthroughEnv), or daxBackend (newDAXEnv).
func newBackendEnv(cfg Config, backend string, mode holefs.LockMode, cacheBytes, devBytes int64) (*env, error) {
	switch backend {
	case holefs.BackendPassthrough:
		return newPassthroughEnv(cfg, mode, cacheBytes)
	case daxBackend:
		return newDAXEnv(cfg, mode, cacheBytes, devBytes)
	}
	return newDeviceEnv(cfg, holefs.Options{Backend: backend, CacheBytes: cacheBytes, LockMode: mode}, devBytes)
}

// newDeviceEnv opens a filesystem with opts on a memory device of
// devBytes behind the latency model, with no latency yet.
func newDeviceEnv(cfg Config, opts holefs.Options, devBytes int64) (*env, error) {
	nblocks := devBytes/pageSize + 1024
	if opts.Backend == holefs.BackendLog {
		nblocks += devBytes / pageSize / 2 // a log needs free space to write into
	}
	dev := newLatencyDevice(blockdev.NewMemory(nblocks), cfg.Seed, cfg.SleepDevice)
	opts.Device = dev
	fsys, err := holefs.Open("", opts)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return &env{fs: fsys, dev: dev.latency}, nil
}

// newPassthroughEnv opens a passthrough filesystem over a fresh directory
// in the temporary directory (/dev/shm when there is one: memory, like
// the other envs' devices), each file's device behind the latency model,
// with no latency yet.
func newPassthroughEnv(cfg Config, mode holefs.LockMode, cacheBytes int64) (*env, error) {
	dir, err := os.MkdirTemp(cfg.tempDir(), "holefs-bench-passthrough-")
	if err != nil {
		return nil, err
	}
	lat := newLatency(cfg.Seed, cfg.SleepDevice)
	fsys, err := holefs.Open("", holefs.Options{Backend: holefs.BackendPassthrough, BackingDir: dir,
		CacheBytes: cacheBytes, LockMode: mode, UnsafeLockNone: true,
		WrapDevice: func(d blockdev.Device) blockdev.Device { return lat.wrap(d) }})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &env{fs: fsys, dev: lat, backing: dir}, nil
}

// newDAXEnv opens an extentfs filesystem in DAX mode on a memory device:
// persistent memory, addressed in place, so no latency model sits in
// between (the env's latency counts nothing) and no page is cached.
func newDAXEnv(cfg Config, mode holefs.LockMode, cacheBytes, devBytes int64) (*env, error) {
	fsys, err := holefs.Open("", holefs.Options{DAX: true, Device: blockdev.NewMemory(devBytes/pageSize + 1024),
		CacheBytes: cacheBytes, LockMode: mode})
	if err != nil {
		return nil, err
	}
	return &env{fs: fsys, dev: newLatency(cfg.Seed, cfg.SleepDevice)}, nil
}

// measure turns the configured device latency on.
func (e *env) measure(cfg Config) { e.dev.SetLatency(cfg.Latency, cfg.Jitter) }

// close turns the latency off (Close writes everything back) and closes.
func (e *env) close() error {
	e.dev.SetLatency(0, 0)
	err := e.fs.Close()
	if e.backing != "" {
		os.RemoveAll(e.backing)
	}
	return err
}

func (e *env) stats() pagecache.Stats { return e.fs.CacheStats() }

// fillPattern returns n bytes of seeded pseudo-random data: blocks the
// memory device really stores (it drops all-zero blocks).
func fillPattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0xf111))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64() | 1
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// writerAt is a holefs.File or an *os.File.
type writerAt interface {
	WriteAt([]byte, int64) (int, error)
}

// fillFile writes size bytes of pattern data in 1 MiB writes.
func fillFile(f writerAt, size int64, seed uint64) error {
	buf := fillPattern(seed, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// createFilled creates name in e, fills it with size bytes, writes it back
// and drops it from the cache: the measured phase starts cold.
func (e *env) createFilled(name string, size int64, seed uint64) error {
	f, err := e.fs.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fillFile(f, size, seed); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Fadvise(0, 0, unix.FADV_DONTNEED)
}

// readAll reads a whole file once, which caches every page of a file
// smaller than the cache.
func (e *env) readAll(name string) error {
	f, err := e.fs.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// tempDir is where os.File references and file devices live: /dev/shm
// (memory, like holefs's cache) if it exists.
func (c Config) tempDir() string {
	if c.TempDir != "" {
		return c.TempDir
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "holefs-bench-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// shmFile creates a temporary file on /dev/shm for an os.File reference,
// or returns ok false (and why) if there is no usable /dev/shm.
func (c Config) shmFile() (f *os.File, why string) {
	dir := c.TempDir
	if dir == "" {
		dir = "/dev/shm"
	}
	f, err := os.CreateTemp(dir, "holefs-bench-")
	if err != nil {
		return nil, fmt.Sprintf("os.File reference skipped: %v", err)
	}
	return f, ""
}

// removeFile closes and removes an os.File reference.
func removeFile(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}
