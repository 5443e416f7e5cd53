package meta

import (
	"sync/atomic"
	"time"
)

// maxBatchWait bounds how long a commit waits for more fsyncs to join it.
const maxBatchWait = 2 * time.Millisecond

// batch gathers concurrent fsyncs into one commit, as jbd2 does for
// synchronous handles (Linux's jbd2_journal_stop: when another task did the
// last synchronous commit, wait up to the average commit time for more to
// join). Group commit alone shares a commit among the callers that arrive
// while the previous one flushes; the callers it served then come back
// while the next commit flushes, and commits alternate between most of
// them and the rest. A commit that follows one shared by several callers
// therefore waits — at most the average flush time, and never past
// maxBatchWait — until as many callers are in Commit as the last commit
// served, so that they go on sharing one.
type batch struct {
	callers atomic.Int32  // goroutines in Commit
	arrived chan struct{} // a caller entered Commit (capacity 1)
	last    int32         // +checklocks:commitMu; callers in Commit when the last commit took the queue
	flushNs atomic.Int64  // moving average of a flush's duration
}

// enter counts a caller of Commit; the returned function uncounts it.
func (b *batch) enter() func() {
	b.callers.Add(1)
	select {
	case b.arrived <- struct{}{}:
	default:
	}
	return func() { b.callers.Add(-1) }
}

// gather waits, under the commit lock, for the callers of a shared
// commit to come back (see batch).
func (b *batch) gather() {
	want := b.last
	wait := min(time.Duration(b.flushNs.Load()), maxBatchWait)
	if want <= 1 || wait <= 0 || b.callers.Load() >= want {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for b.callers.Load() < want {
		select {
		case <-b.arrived:
		case <-t.C:
			return
		}
	}
}

// took notes how many callers the commit taking the queue now serves.
func (b *batch) took() { b.last = b.callers.Load() }

// timed runs a flush and folds its duration into the average.
func (b *batch) timed(flush func() error) error {
	t0 := time.Now()
	err := flush()
	d := int64(time.Since(t0))
	old := b.flushNs.Load()
	b.flushNs.Store(old - old/8 + d/8)
	return err
}
