package repro

import (
	"sync/atomic"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/pagecache"
	"github.com/holefs/holefs/vfs"
)

// mount puts a vfs on be whose hooks hit the env's stops for the victim
// page only: the page cache's before a fill and after its block lookup,
// the vfs's after a remover truncated the victim's page cache.
func (e *env) mount(be vfs.Backend, s Scenario) {
	isVictim := func(m *pagecache.Mapping) bool { return uint64(m.Key()) == atomic.LoadUint64(&e.victimIno) }
	hooks := &pagecache.Hooks{
		BeforeFill: func(m *pagecache.Mapping, index, n int64) {
			if isVictim(m) && index <= victim && victim < index+n {
				e.beforeFill.hit()
			}
		},
		AfterMapRead: func(m *pagecache.Mapping, x blockmap.Extent) {
			if isVictim(m) && x.Page <= victim && victim < x.End() {
				e.afterMap.hit()
			}
		},
	}
	e.fs = vfs.New(be, pagecache.Options{CacheBytes: 4 << 20, LockMode: s.Mode, FileInvalidateLock: s.FileLock, Hooks: hooks},
		&vfs.Hooks{AfterTruncatePages: func(ino uint64, op string) {
			if ino == atomic.LoadUint64(&e.victimIno) {
				e.afterTrunc.hit()
			}
		}})
}

// race is one forced interleaving of a filler and a remover of the victim
// page. Every scenario plays the same first steps (startRace, toLookup);
// they differ in the order in which the remover and the filler are let go
// after that, which the caller decides with releaseRemover and
// releaseFiller.
type race struct {
	e          *env
	waiters    func() int // goroutines blocked on the victim's inode lock or invalidate lock
	fillDone   chan struct{}
	removeDone chan struct{}
	removeErr  error // remove's result once removeDone is closed
}

// startRace plays steps 1 and 2: the filler runs until it stops before it
// creates the victim page of a; then the remover runs until it has
// truncated the page cache and stops before it changes the block map (or
// the zone), unless a lock the filler holds stops it first, or it returns.
func (e *env) startRace(a *vfs.File, fill func(), remove func() error) (*race, error) {
	atomic.StoreUint64(&e.victimIno, a.Inode().Ino())
	inodeLock := a.Inode().Lock()
	invLock := a.Inode().Mapping().InvalidateLock()
	r := &race{e: e, waiters: func() int { return inodeLock.Waiters() + invLock.Waiters() },
		fillDone: make(chan struct{}), removeDone: make(chan struct{})}

	e.beforeFill.armed.Store(true)
	e.afterMap.armed.Store(true)
	go func() { defer close(r.fillDone); fill() }()
	if _, err := waitUntil(e.beforeFill.wasReached, func() bool { return closed(r.fillDone) }); err != nil {
		return nil, err
	}
	e.afterTrunc.armed.Store(true)
	go func() { defer close(r.removeDone); r.removeErr = remove() }()
	if _, err := waitUntil(e.afterTrunc.wasReached, func() bool { return r.waiters() > 0 },
		func() bool { return closed(r.removeDone) }); err != nil {
		return nil, err
	}
	return r, nil
}

// toLookup plays step 3: the filler goes on until it has looked the block
// up and stops before reading it, or blocks on a lock the remover holds,
// or finishes. It reports whether the two interleaved: both stopped
// inside their critical sections at once, the window the invalidate lock
// closes.
func (r *race) toLookup() (bool, error) {
	e := r.e
	base := r.waiters()
	close(e.beforeFill.release)
	if _, err := waitUntil(e.afterMap.wasReached, func() bool { return closed(r.fillDone) },
		func() bool { return r.waiters() > base }); err != nil {
		return false, err
	}
	return e.afterMap.wasReached() && e.afterTrunc.wasReached() && !closed(r.removeDone), nil
}

// releaseRemover lets the remover change the block map (or the zone).
func (r *race) releaseRemover() {
	r.e.afterTrunc.armed.Store(false)
	close(r.e.afterTrunc.release)
}

// releaseFiller lets the filler read the block it looked up.
func (r *race) releaseFiller() {
	r.e.afterMap.armed.Store(false)
	close(r.e.afterMap.release)
}

// finish waits until both the filler and the remover have returned; the
// remover's error is then in removeErr.
func (r *race) finish() error {
	_, err := waitUntil(func() bool { return closed(r.fillDone) && closed(r.removeDone) })
	return err
}
