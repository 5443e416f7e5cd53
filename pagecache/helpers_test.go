package pagecache

import (
	"bytes"
	"flag"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap/extentfs"
	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on (an out-of-order acquisition
// panics where it happens) and checks that every Cache.Close stopped the
// flusher and the async readahead goroutines. Benchmarks run without the
// checker: it costs a stack trace per lock acquisition and would measure
// nothing else.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		lockcheck.Enable()
	}
	goleak.VerifyTestMain(m)
}

const pg = PageSize

// waitDeadline bounds every poll loop. It is generous: it only keeps a
// broken build from hanging, it never decides a verdict on a slow machine.
const waitDeadline = 30 * time.Second

// env is one file's page cache on an extentfs block map and a
// fault-injecting memory device.
type env struct {
	c     *Cache
	store *extentfs.FS
	mem   *blockdev.Memory
	dev   *blockdev.Faulty
	host  *lockcheck.RWMutex
	m     *Mapping
}

// newEnv builds an env of nblocks device blocks whose cache is closed when
// the test ends (after clearing injected faults, so Close can write back).
// Unless opts says otherwise, dirty data never expires, so the background
// flusher only runs on dirty thresholds.
func newEnv(t testing.TB, opts Options, nblocks int64) *env {
	t.Helper()
	if opts.DirtyExpire == 0 {
		// The flusher must not write back behind a test that counts writes.
		opts.DirtyExpire = time.Hour
	}
	e := &env{c: NewCache(opts), store: extentfs.New(nblocks), mem: blockdev.NewMemory(nblocks)}
	e.dev = blockdev.NewFaulty(e.mem, blockdev.FaultOptions{})
	e.host = &lockcheck.RWMutex{}
	e.host.Init(lockcheck.RankInode, 1)
	e.m = e.c.NewMapping(MappingOptions{Blocks: e.store.NewFile(0), Device: e.dev, Host: e.host, Key: 1})
	t.Cleanup(func() {
		e.dev.Clear()
		if err := e.c.Close(); err != nil {
			t.Errorf("Cache.Close: %v", err)
		}
	})
	return e
}

// write is the VFS's buffered write: inode lock exclusive, allocate, copy,
// extend the size; then, unlocked, the dirty throttle.
func (e *env) write(t testing.TB, p []byte, off int64) {
	t.Helper()
	e.writeLocked(t, p, off)
	e.c.BalanceDirty()
}

func (e *env) writeLocked(t testing.TB, p []byte, off int64) {
	t.Helper()
	e.host.Lock()
	defer e.host.Unlock()
	first := off / pg
	if err := e.m.Blocks().Allocate(first, (off+int64(len(p))+pg-1)/pg-first); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	n, err := e.m.Write(p, off)
	if err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes at %d) = %d, %v", len(p), off, n, err)
	}
	if end := off + int64(n); end > e.m.Size() {
		e.m.SetSize(end)
	}
}

// populate writes data at 0, writes it back and drops it from the cache,
// so the next read comes from the device.
func (e *env) populate(t testing.TB, data []byte) {
	t.Helper()
	e.write(t, data, 0)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	e.m.InvalidateClean(0, maxPageIdx+1)
	if n := e.m.NrPages(); n != 0 {
		t.Fatalf("after InvalidateClean: NrPages = %d, want 0", n)
	}
}

// truncate is the VFS's truncate down: both locks exclusive, size, pages,
// then blocks.
func (e *env) truncate(t testing.TB, size int64) {
	t.Helper()
	e.host.Lock()
	defer e.host.Unlock()
	defer e.m.LockRemove(size, math.MaxInt64).Unlock()
	e.m.SetSize(size)
	if err := e.m.TruncateRange(size, math.MaxInt64); err != nil {
		t.Fatalf("TruncateRange(%d, max): %v", size, err)
	}
	if err := e.m.Blocks().Truncate((size + pg - 1) / pg); err != nil {
		t.Fatalf("blocks.Truncate: %v", err)
	}
}

// punch is the VFS's punch hole of whole pages [first, first+n).
func (e *env) punch(t testing.TB, first, n int64) {
	t.Helper()
	e.host.Lock()
	defer e.host.Unlock()
	defer e.m.LockRemove(first*pg, (first+n)*pg).Unlock()
	if err := e.m.TruncateRange(first*pg, (first+n)*pg); err != nil {
		t.Fatalf("TruncateRange: %v", err)
	}
	if err := e.m.Blocks().Punch(first, n); err != nil {
		t.Fatalf("Punch: %v", err)
	}
}

// pattern returns n bytes that differ from page to page and from byte to
// byte, tagged by seed, never zero.
func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i/pg*7+i*13) ^ seed | 1
	}
	return p
}

// checkBytes compares got with want, reporting the first difference.
func checkBytes(t testing.TB, got, want []byte, what string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: first difference at byte %d (page %d): got %#x, want %#x", what, i, i/pg, got[i], want[i])
	}
}

// readAll reads n bytes at off with ra, wanting all of them.
func (e *env) readAll(t testing.TB, off int64, n int, ra *ReadaheadState) []byte {
	t.Helper()
	buf := make([]byte, n)
	got, err := e.m.Read(buf, off, ra)
	if got != n || err != nil {
		t.Fatalf("Read(%d bytes at %d) = %d, %v", n, off, got, err)
	}
	return buf
}

// eventually polls cond until it holds or waitDeadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) for: %s", waitDeadline, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// within runs fn in a goroutine and fails the test if it has not returned
// by waitDeadline (a hang, not a slow machine).
func within(t testing.TB, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(waitDeadline):
		t.Fatalf("%s did not return within %v (hang)", what, waitDeadline)
	}
}
