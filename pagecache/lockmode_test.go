package pagecache

import (
	"bytes"
	"testing"
)

func TestParseLockMode(t *testing.T) {
	for _, m := range LockModes {
		got, err := ParseLockMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseLockMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if len(LockModes) != 3 || LockModes[0] != LockInvalidate {
		t.Errorf("LockModes = %v", LockModes)
	}
	for _, s := range []string{"", "Invalidate", "xfs", "none "} {
		if _, err := ParseLockMode(s); err == nil {
			t.Errorf("ParseLockMode(%q) accepted", s)
		}
	}
	if s := LockMode(9).String(); s != "LockMode(9)" {
		t.Errorf("LockMode(9).String() = %q", s)
	}
	var zero Options
	if zero.LockMode != LockInvalidate {
		t.Error("the zero LockMode is not the invalidate protocol")
	}
}

// TestLockModeBlocking runs each read-side operation while the test holds
// the inode lock or the invalidate lock exclusive, and checks which of them
// wait for it in each lock mode. An operation that must wait is seen
// blocked on that lock (its Waiters count), is not done while the lock is
// held, and completes with the right data once it is released; one that
// must not wait completes while the lock is held.
func TestLockModeBlocking(t *testing.T) {
	type op struct {
		name string
		// setup prepares the env and returns the operation, which checks
		// its own result.
		setup func(t *testing.T, e *env, data []byte) func() error
	}
	readPage := func(idx int64) func(t *testing.T, e *env, data []byte) func() error {
		return func(t *testing.T, e *env, data []byte) func() error {
			return func() error {
				buf := make([]byte, pg)
				if _, err := e.m.Read(buf, idx*pg, nil); err != nil {
					return err
				}
				if !bytes.Equal(buf, data[idx*pg:(idx+1)*pg]) {
					t.Error("Read returned wrong data")
				}
				return nil
			}
		}
	}
	ops := []op{
		{"read hit", func(t *testing.T, e *env, data []byte) func() error {
			e.readAll(t, 0, pg, nil)
			return readPage(0)(t, e, data)
		}},
		{"read miss", readPage(5)},
		{"readahead", func(t *testing.T, e *env, data []byte) func() error {
			return func() error {
				if err := e.m.Readahead(6*pg, pg); err != nil {
					return err
				}
				if e.m.index.lookup(6) == nil {
					t.Error("Readahead did not cache the page")
				}
				return nil
			}
		}},
		{"fault hit", func(t *testing.T, e *env, data []byte) func() error {
			e.readAll(t, 0, pg, nil)
			v := e.mmap(t, 0, 8*pg, false)
			return func() error {
				buf := make([]byte, pg)
				if _, err := v.ReadAt(buf, 0); err != nil {
					return err
				}
				if !bytes.Equal(buf, data[:pg]) {
					t.Error("fault returned wrong data")
				}
				return nil
			}
		}},
		{"fault miss", func(t *testing.T, e *env, data []byte) func() error {
			v := e.mmap(t, 0, 8*pg, false)
			return func() error {
				buf := make([]byte, pg)
				if _, err := v.ReadAt(buf, 7*pg); err != nil {
					return err
				}
				if !bytes.Equal(buf, data[7*pg:]) {
					t.Error("fault returned wrong data")
				}
				return nil
			}
		}},
		{"mkwrite", func(t *testing.T, e *env, data []byte) func() error {
			v := e.mmap(t, 0, 8*pg, true)
			viewRead(t, v, pg, 1) // mapped read-only
			return func() error {
				if _, err := v.WriteAt([]byte{0xAA}, pg); err != nil {
					return err
				}
				if e.m.NrDirty() != 1 {
					t.Error("mkwrite did not dirty the page")
				}
				return nil
			}
		}},
	}
	type lockKind int
	const (
		host lockKind = iota
		inval
		// invalElsewhere holds the invalidate lock exclusive over pages
		// 2-4, which no operation touches (they use pages 0, 1, 5, 6
		// and 7): a removal of another range, which stalls no fill.
		invalElsewhere
	)
	// blocks[mode][lock] lists the operations that must wait.
	blocks := map[LockMode]map[lockKind][]string{
		LockInvalidate: {
			host:  nil,
			inval: {"read miss", "readahead", "fault miss", "mkwrite"},
		},
		LockRWSem: {
			host:  {"read hit", "read miss", "readahead"},
			inval: {"fault miss", "mkwrite"},
		},
		LockNone: {host: nil, inval: nil},
	}
	for _, mode := range LockModes {
		for _, lk := range []lockKind{host, inval, invalElsewhere} {
			for _, o := range ops {
				lname := map[lockKind]string{host: "inode", inval: "invalidate", invalElsewhere: "invalidate elsewhere"}[lk]
				t.Run(mode.String()+"/"+lname+"/"+o.name, func(t *testing.T) {
					e := newEnv(t, Options{LockMode: mode}, 64)
					data := pattern(60, 8*pg)
					e.populate(t, data)
					run := o.setup(t, e, data)
					var l heldLock = e.host
					switch lk {
					case inval:
						l = &heldRange{l: e.m.InvalidateLock(), first: 0, last: maxPageIdx + 1}
					case invalElsewhere:
						l = &heldRange{l: e.m.InvalidateLock(), first: 2, last: 5}
					}
					mustWait := false
					for _, n := range blocks[mode][lk] {
						mustWait = mustWait || n == o.name
					}
					l.Lock()
					locked := true
					defer func() {
						if locked {
							l.Unlock()
						}
					}()
					done := make(chan error, 1)
					go func() { done <- run() }()
					if mustWait {
						eventually(t, o.name+" to wait for the "+lname+" lock", func() bool { return l.Waiters() > 0 })
						select {
						case err := <-done:
							t.Fatalf("%s completed (err %v) while the %s lock was held exclusive", o.name, err, lname)
						default:
						}
						l.Unlock()
						locked = false
					}
					within(t, o.name, func() {
						if err := <-done; err != nil {
							t.Errorf("%s: %v", o.name, err)
						}
					})
				})
			}
		}
	}
}

// heldLock is what TestLockModeBlocking holds: the inode lock, or the
// invalidate lock over a range.
type heldLock interface {
	Lock()
	Unlock()
	Waiters() int
}

// heldRange holds a RangeLock exclusive over the pages [first, last).
type heldRange struct {
	l           *RangeLock
	first, last int64
	h           RangeHold
}

func (r *heldRange) Lock()        { r.h = r.l.Lock(r.first, r.last) }
func (r *heldRange) Unlock()      { r.h.Unlock() }
func (r *heldRange) Waiters() int { return r.l.Waiters() }
