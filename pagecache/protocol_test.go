package pagecache

import (
	"bytes"
	"sync"
	"testing"

	"github.com/holefs/holefs/blockmap"
)

// TestFillVersusPunch forces the race the invalidate lock closes, at the
// page-cache level: a punch truncates page 1 from the cache; a fill path
// then tries to create page 1 and look up its block; the punch frees the
// block, and "another file" writes a secret into it. Under LockNone the
// filler gets between the two halves of the punch and caches the secret;
// under the protected modes it waits for the punch and reads a hole.
func TestFillVersusPunch(t *testing.T) {
	fills := []struct {
		name string
		run  func(e *env, v *MappedView) ([]byte, error)
	}{
		{"read", func(e *env, _ *MappedView) ([]byte, error) {
			buf := make([]byte, pg)
			_, err := e.m.Read(buf, pg, new(ReadaheadState))
			return buf, err
		}},
		{"fault", func(_ *env, v *MappedView) ([]byte, error) {
			buf := make([]byte, pg)
			_, err := v.ReadAt(buf, pg)
			return buf, err
		}},
		{"readahead", func(e *env, _ *MappedView) ([]byte, error) {
			if err := e.m.Readahead(pg, pg); err != nil {
				return nil, err
			}
			p := e.m.findGet(1)
			if p == nil {
				return make([]byte, pg), nil
			}
			defer p.put()
			buf := make([]byte, pg)
			p.copyOut(buf, 0)
			return buf, nil
		}},
	}
	for _, mode := range LockModes {
		for _, fill := range fills {
			t.Run(mode.String()+"/"+fill.name, func(t *testing.T) {
				var inHook, release = make(chan struct{}), make(chan struct{})
				var once sync.Once
				hooks := &Hooks{AfterMapRead: func(_ *Mapping, ext blockmap.Extent) {
					if ext.Page <= 1 && 1 < ext.End() {
						once.Do(func() { close(inHook); <-release })
					}
				}}
				e := newEnv(t, Options{LockMode: mode, Hooks: hooks}, 64)
				data := pattern(90, 4*pg)
				e.populate(t, data)
				v := e.mmap(t, 0, 4*pg, false)
				ext, _ := e.m.Blocks().Lookup(1, 1)
				freed := ext.Block

				// First half of the punch: both locks, truncate the cache.
				e.host.Lock()
				inv := e.m.LockRemove(pg, 2*pg)
				if err := e.m.TruncateRange(pg, 2*pg); err != nil {
					t.Fatal(err)
				}
				type result struct {
					buf []byte
					err error
				}
				done := make(chan result, 1)
				go func() {
					buf, err := fill.run(e, v)
					done <- result{buf, err}
				}()
				if mode == LockNone {
					within(t, "the unprotected filler to reach its block read", func() { <-inHook })
				} else {
					eventually(t, "the filler to wait for the punch", func() bool {
						return e.host.Waiters() > 0 || e.m.InvalidateLock().Waiters() > 0
					})
					select {
					case <-inHook:
						t.Fatal("the filler looked up a block while the punch held its locks")
					default:
					}
				}
				// Second half: free the block; another file reuses it.
				if err := e.m.Blocks().Punch(1, 1); err != nil {
					t.Fatal(err)
				}
				secret := bytes.Repeat([]byte("SECRET!!"), pg/8)
				if err := e.mem.WriteBlocks(secret, freed); err != nil {
					t.Fatal(err)
				}
				inv.Unlock()
				e.host.Unlock()
				close(release)
				var r result
				within(t, "the filler", func() { r = <-done })
				if r.err != nil {
					t.Fatal(r.err)
				}
				cached := make([]byte, pg)
				if p := e.m.findGet(1); p != nil {
					p.copyOut(cached, 0)
					p.put()
				}
				if mode == LockNone {
					if !bytes.Equal(r.buf, secret) && !bytes.Equal(cached, secret) {
						t.Fatal("LockNone: the forced interleaving did not expose the freed block (the test no longer forces the race)")
					}
					return
				}
				zero := make([]byte, pg)
				if !bytes.Equal(r.buf, zero) || !bytes.Equal(cached, zero) {
					t.Fatalf("%v: the filler saw %q..., the cache holds %q...; want zeros of the punched hole", mode, r.buf[:8], cached[:8])
				}
				checkBytes(t, e.readAll(t, 0, pg, nil), data[:pg], "page 0 untouched by the punch")
			})
		}
	}
}
