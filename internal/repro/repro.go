// Package repro reproduces, deterministically, the race the invalidate
// lock closes: a fill path (read, fault, readahead, fadvise or madvise
// WILLNEED) creating a page and looking up its block while a remover
// (punch, zero range, collapse, truncate) has truncated the page cache but
// not yet changed the block map. Hooks stop both at the racy points and
// release them in the order that exposes the bug: the remover finishes,
// another file takes over the freed block and writes a secret into it, and
// only then does the filler read "its" block.
//
// Under LockNone the filler caches stale or foreign data; under
// LockInvalidate and LockRWSem it cannot get between the two halves of the
// remover. Tests assert both; `holefs demo` prints the table.
//
// A DAX file (Scenario.DAX) caches nothing; its fill paths are read and
// fault, and what the race leaves is a view entry addressing the freed
// block, which the next owner's secret then shows through, or the secret
// returned by the read itself.
package repro

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/blockmap/extentfs"
	"github.com/holefs/holefs/blockmap/memfs"
	"github.com/holefs/holefs/pagecache"
	"github.com/holefs/holefs/vfs"
)

// Fills are the fill paths a scenario can race.
var Fills = []string{"read", "fault", "readahead", "fadvise", "madvise"}

// Removers are the block-removing operations a scenario can race.
var Removers = []string{"punch", "zero", "collapse", "truncate"}

// Scenario is one race: a fill path against a remover on one backend.
type Scenario struct {
	Backend string // "extentfs", "ext2", "memfs" or "zonefs" (whose remover is "reset")
	Mode    pagecache.LockMode
	Fill    string
	Remove  string
	// Writeback: after the race, dirty the victim page and write it back;
	// the verdict is then about the neighbour file, whose block a stale
	// page's cached mapping may still point at.
	Writeback bool
	// DAX runs the victim in DAX mode (extentfs on a memory device): no
	// page is cached, so what the race can leave behind is a view entry
	// addressing a freed block, or the bytes a read returned.
	DAX bool
	// FileLock gives the filesystem the per-file invalidate lock
	// (Linux's) instead of the range lock: both must prevent every race.
	FileLock bool
}

func (s Scenario) String() string {
	wb := ""
	if s.Writeback {
		wb = "+writeback"
	}
	dax := ""
	if s.DAX {
		dax = "+dax"
	}
	mode := s.Mode.String()
	if s.FileLock {
		mode += "+filelock"
	}
	return fmt.Sprintf("%s%s/%s/%s-vs-%s%s", s.Backend, dax, mode, s.Fill, s.Remove, wb)
}

// DAXFills are the fill paths a DAX file has: it caches nothing, so
// readahead, fadvise and madvise WILLNEED do nothing there.
var DAXFills = []string{"read", "fault"}

// ErrUnsupported is returned for a remover the backend does not have
// (memfs, like tmpfs, has no zero range or collapse; ext2 has no
// fallocate at all, so truncate is its one remover).
var ErrUnsupported = errors.New("repro: remover not supported by the backend")

// Verdict says what the victim file showed after the race.
type Verdict string

const (
	OK      Verdict = "ok"      // the data the file must hold
	Stale   Verdict = "stale"   // data the remover removed
	Foreign Verdict = "foreign" // another file's data
	Corrupt Verdict = "corrupt" // another file's data overwritten (writeback scenario)
)

// Outcome is the result of a scenario.
type Outcome struct {
	Verdict Verdict
	// Interleaved reports whether the filler got between the remover's
	// page-cache truncation and its block-map change (it can only under
	// LockNone).
	Interleaved bool
}

const (
	pages  = 4
	victim = 1 // the page the race is about
	pg     = blockmap.PageSize
)

// pattern returns the content of page i of the victim before the race.
func pattern(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, pg) }

var secret = bytes.Repeat([]byte{'S'}, pg)

// deadline bounds every wait: past it the scenario deadlocked, which is a
// bug in itself. It is a liveness guard, never a performance assertion.
const deadline = 20 * time.Second

type stop struct {
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func newStop() *stop { return &stop{reached: make(chan struct{}), release: make(chan struct{})} }

// hit runs on the stopped goroutine: the first time the stop is armed it
// signals and waits to be released.
func (s *stop) hit() {
	if s.armed.CompareAndSwap(true, false) {
		close(s.reached)
		<-s.release
	}
}

func (s *stop) wasReached() bool {
	select {
	case <-s.reached:
		return true
	default:
		return false
	}
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// waitUntil polls until one condition holds and returns its index.
func waitUntil(conds ...func() bool) (int, error) {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		for i, c := range conds {
			if c() {
				return i, nil
			}
		}
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
	}
	return -1, errors.New("repro: scenario deadlocked")
}

type env struct {
	fs         *vfs.FS
	victimIno  uint64
	beforeFill *stop
	afterMap   *stop
	afterTrunc *stop
}

func newEnv(s Scenario) (*env, error) {
	e := &env{beforeFill: newStop(), afterMap: newStop(), afterTrunc: newStop()}
	var be vfs.Backend
	switch s.Backend {
	case "extentfs":
		dev := blockdev.NewMemory(256)
		be = vfs.Backend{Store: extentfs.New(dev.NumBlocks()), Device: dev}
		if s.DAX {
			be.DAX = dev
		}
	case "ext2":
		dev := blockdev.NewMemory(256)
		store, err := ext2fs.New(dev)
		if err != nil {
			return nil, err
		}
		be = vfs.Backend{Store: store, Device: dev}
		if s.DAX {
			be.DAX = dev
		}
	case "memfs":
		be = vfs.Backend{Store: memfs.New(256), Memory: true}
	default:
		return nil, fmt.Errorf("repro: unknown backend %q", s.Backend)
	}
	e.mount(be, s)
	return e, nil
}

func (e *env) create(name string) (*vfs.File, error) {
	in, _, err := e.fs.Create(name, 0o644, true)
	if err != nil {
		return nil, err
	}
	return e.fs.Open(in, os.O_RDWR)
}

// Run plays the scenario once.
func Run(s Scenario) (Outcome, error) {
	if s.DAX && s.Backend != "extentfs" && s.Backend != "ext2" {
		return Outcome{}, fmt.Errorf("repro: DAX needs the extentfs or ext2 backend, not %q", s.Backend)
	}
	if s.Backend == "zonefs" {
		return runZonefs(s)
	}
	if s.DAX && !slices.Contains(DAXFills, s.Fill) {
		return Outcome{}, fmt.Errorf("repro: a DAX file has no %s fill path", s.Fill)
	}
	e, err := newEnv(s)
	if err != nil {
		return Outcome{}, err
	}
	defer e.fs.Close()

	a, err := e.create("victim")
	if err != nil {
		return Outcome{}, err
	}
	for i := 0; i < pages; i++ {
		if _, _, err := a.WriteAt(pattern(i), int64(i)*pg); err != nil {
			return Outcome{}, err
		}
	}
	if err := a.Sync(); err != nil {
		return Outcome{}, err
	}
	// Drop the victim's cache so the fill path misses (memfs pages are
	// the storage and stay).
	if err := a.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
		return Outcome{}, err
	}
	var view *vfs.View
	if s.Fill == "fault" || s.Fill == "madvise" {
		if view, err = a.Mmap(0, pages*pg, false); err != nil {
			return Outcome{}, err
		}
		defer view.Unmap()
	}
	filled := make([]byte, pg) // what the fill path returned, if it returns data
	fill, err := fillFunc(s.Fill, a, view, filled)
	if err != nil {
		return Outcome{}, err
	}
	remove, err := removeFunc(s.Remove, a)
	if err != nil {
		return Outcome{}, err
	}

	// 1 and 2. The filler stops before it creates the victim page, the
	// remover after it truncated the page cache (or on the filler's lock).
	r, err := e.startRace(a, fill, remove)
	if err != nil {
		return Outcome{}, err
	}
	if closed(r.removeDone) && errors.Is(r.removeErr, syscall.EOPNOTSUPP) {
		// Let the filler run to the end: it must not stop after its
		// lookup (a backend with a device reaches that stop).
		e.afterMap.armed.Store(false)
		close(e.beforeFill.release)
		<-r.fillDone
		return Outcome{}, ErrUnsupported
	}
	// 3. The filler looks up the block and stops before reading it, or
	// blocks on a lock the remover holds, or finishes.
	interleaved, err := r.toLookup()
	if err != nil {
		return Outcome{}, err
	}
	// 4. The remover finishes (if the filler's locks let it), another file
	// takes the freed blocks and writes a secret, then the filler reads.
	r.releaseRemover()
	i, err := waitUntil(func() bool { return closed(r.removeDone) },
		func() bool { return e.afterMap.wasReached() && r.waiters() > 0 })
	if err != nil {
		return Outcome{}, err
	}
	if i == 0 {
		if err := e.neighbour(); err != nil {
			return Outcome{}, err
		}
	}
	r.releaseFiller()
	if err := r.finish(); err != nil {
		return Outcome{}, err
	}
	if r.removeErr != nil {
		return Outcome{}, fmt.Errorf("%s: %w", s.Remove, r.removeErr)
	}
	if i != 0 {
		if err := e.neighbour(); err != nil {
			return Outcome{}, err
		}
	}
	var v Verdict
	if s.Writeback {
		v, err = e.writebackVerdict(a)
	} else {
		v, err = verdict(s.Remove, a, view)
	}
	if s.DAX && err == nil && v == OK && bytes.Contains(filled, secret[:16]) {
		// No cache keeps what a DAX read got: its own bytes are the
		// evidence.
		v = Foreign
	}
	return Outcome{Verdict: v, Interleaved: interleaved}, err
}

// writebackVerdict dirties one byte of the victim page and writes it back,
// then reads the neighbour's data from the device: a stale victim page
// that kept the mapping of a freed block writes into the neighbour's block.
func (e *env) writebackVerdict(a *vfs.File) (Verdict, error) {
	if _, _, err := a.WriteAt([]byte{'W'}, victim*pg); err != nil {
		return "", err
	}
	if err := a.Sync(); err != nil {
		return "", err
	}
	in, err := e.fs.Lookup("neighbour", true)
	if err != nil {
		return "", err
	}
	b, err := e.fs.Open(in, os.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer b.Close()
	if err := b.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
		return "", err
	}
	got := make([]byte, pages*pg)
	if _, err := b.ReadAt(got, 0); err != nil {
		return "", err
	}
	if !bytes.Equal(got, bytes.Repeat(secret, pages)) {
		return Corrupt, nil
	}
	return OK, nil
}

// neighbour creates a file that takes the lowest free blocks (those the
// remover freed) and makes a secret durable in them.
func (e *env) neighbour() error {
	b, err := e.create("neighbour")
	if err != nil {
		return err
	}
	defer b.Close()
	for i := 0; i < pages; i++ {
		if _, _, err := b.WriteAt(secret, int64(i)*pg); err != nil {
			return err
		}
	}
	return b.Sync()
}

func fillFunc(name string, a *vfs.File, view *vfs.View, buf []byte) (func(), error) {
	switch name {
	case "read":
		return func() { _, _ = a.ReadAt(buf, victim*pg) }, nil
	case "fault":
		return func() { _, _ = view.ReadAt(buf, victim*pg) }, nil
	case "readahead":
		return func() { _ = a.Readahead(victim*pg, pg) }, nil
	case "fadvise":
		return func() { _ = a.Fadvise(victim*pg, pg, unix.FADV_WILLNEED) }, nil
	case "madvise":
		return func() { _ = view.Madvise(victim*pg, pg, unix.MADV_WILLNEED) }, nil
	}
	return nil, fmt.Errorf("repro: unknown fill path %q", name)
}

func removeFunc(name string, a *vfs.File) (func() error, error) {
	switch name {
	case "punch":
		return func() error {
			return a.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, victim*pg, pg)
		}, nil
	case "zero":
		return func() error { return a.Fallocate(unix.FALLOC_FL_ZERO_RANGE, victim*pg, pg) }, nil
	case "collapse":
		return func() error { return a.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, victim*pg, pg) }, nil
	case "truncate":
		return func() error { return a.Truncate(victim * pg) }, nil
	}
	return nil, fmt.Errorf("repro: unknown remover %q", name)
}

// verdict reads the victim page the way a user would after both
// operations returned, through the cache and through the view.
func verdict(remove string, a *vfs.File, view *vfs.View) (Verdict, error) {
	want := make([]byte, pg)
	switch remove {
	case "collapse":
		want = pattern(victim + 1)
	case "truncate":
		// Grow the file back: the page must read as zeros.
		if err := a.Truncate(pages * pg); err != nil {
			return "", err
		}
	}
	got := make([]byte, pg)
	if _, err := a.ReadAt(got, victim*pg); err != nil {
		return "", err
	}
	v := classify(got, want)
	if view != nil && v == OK {
		if _, err := view.ReadAt(got, victim*pg); err != nil {
			return "", err
		}
		v = classify(got, want)
	}
	return v, nil
}

func classify(got, want []byte) Verdict {
	switch {
	case bytes.Equal(got, want):
		return OK
	case bytes.Contains(got, secret[:16]):
		return Foreign
	default:
		return Stale
	}
}
