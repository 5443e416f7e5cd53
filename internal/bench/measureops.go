package bench

import (
	"errors"
	"time"
)

// errSkip from an operation of measureOps says it did nothing (a mode the
// backend refused, to be retried another way): it is neither recorded nor
// followed by the pause.
var errSkip = errors.New("operation skipped")

// measureOps is the loop of one reader, writer or remover of a timed
// configuration: until the run stops, next picks where the next operation
// goes (outside the timed part) and op does it there; the latency of each
// operation begun while the run measured goes into h, and pause follows
// every operation (a remover's rate). The first error ends the loop and is
// kept in ferr. It gives how many operations it recorded.
func measureOps(run *run, h *hist, ferr *firstErr, pause time.Duration, next func() int64, op func(off int64) error) int64 {
	n := int64(0)
	for !run.stopped() {
		on := run.measuring()
		off := next()
		t := time.Now()
		err := op(off)
		if err == errSkip {
			continue
		}
		if err != nil {
			ferr.set(err)
			break
		}
		if on {
			h.record(time.Since(t))
			n++
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return n
}
