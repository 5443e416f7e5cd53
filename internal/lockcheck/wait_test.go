package lockcheck

import (
	"testing"
	"time"
)

// TestWaitStats: blocked acquisitions are counted and timed, shared and
// exclusive apart; uncontended ones are not.
func TestWaitStats(t *testing.T) {
	var ws WaitStats
	var m RWMutex
	m.Init(RankInvalidate, 1)
	m.SetWaitStats(&ws)
	m.RLock()
	m.RUnlock()
	m.Lock()
	m.Unlock()
	if ws.SharedWaits.Load() != 0 || ws.ExclusiveWaits.Load() != 0 {
		t.Fatalf("uncontended acquisitions counted: %d shared, %d exclusive", ws.SharedWaits.Load(), ws.ExclusiveWaits.Load())
	}
	const hold = 20 * time.Millisecond
	block := func(take, release func()) {
		done := make(chan struct{})
		m.Lock()
		go func() {
			take()
			release()
			close(done)
		}()
		for m.Waiters() == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(hold)
		m.Unlock()
		<-done
	}
	block(m.RLock, m.RUnlock)
	block(m.Lock, m.Unlock)
	for _, c := range []struct {
		name  string
		waits int64
		wait  time.Duration
	}{
		{"shared", ws.SharedWaits.Load(), time.Duration(ws.SharedNanos.Load())},
		{"exclusive", ws.ExclusiveWaits.Load(), time.Duration(ws.ExclusiveNanos.Load())},
	} {
		if c.waits != 1 || c.wait < hold {
			t.Errorf("%s: %d waits for %v, want 1 of at least %v", c.name, c.waits, c.wait, hold)
		}
	}
}
