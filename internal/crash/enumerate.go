package crash

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/holefs/holefs/blockdev"
)

// metaState is a meta.db a crash may leave: the state of commit k (0: as
// mkfs made it) and the model's view of that commit. On an image with a
// log, meta.db is that of checkpoint k (0: none yet) and snap is nil: the
// commit the image holds is the last one its log replays, which check
// reads from the rebuilt image.
type metaState struct {
	k    int
	db   []byte
	snap *snapshot
}

// crashState is one state to rebuild and check: a crash after the first
// n entries of the log, the metadata it left, and which of the writes not
// yet flushed reached the disk.
type crashState struct {
	n    int
	meta metaState
	sub  subset
}

// crashPoints returns the log lengths at which the recording is cut:
// just before every flush completes (its writes, and every write since
// the previous flush, are then unflushed: any subset may have reached the
// disk), inside every commit's metadata transaction (either metadata
// state, with the data the commit flushed), and the end. A crash anywhere
// else leaves a state that one of these, with some subset, also leaves:
// between two such points no flush completes and no commit changes
// meta.db.
func (r *recording) crashPoints() []int {
	var ns []int
	for i, e := range r.log {
		if e.Kind == blockdev.EntryFlush {
			ns = append(ns, i)
		}
	}
	for _, c := range r.commits[1:] {
		if c.afterMark >= 0 {
			ns = append(ns, c.afterMark)
		}
	}
	for _, c := range r.ckpts {
		if c.afterMark >= 0 {
			ns = append(ns, c.afterMark)
		}
	}
	ns = append(ns, len(r.log))
	slices.Sort(ns)
	return slices.Compact(ns)
}

// metaStates returns the meta.db states a crash after the first n log
// entries may leave: the last commit completed before, and, inside a
// commit's transaction, also the one before it. bbolt makes its commit
// atomic and durable when it returns (it fsyncs), so no older state is
// possible, and none newer.
func (r *recording) metaStates(n int) []metaState {
	if r.wal {
		return r.ckptStates(n)
	}
	k := 0
	for i, c := range r.commits[1:] {
		if c.afterMark >= 0 && c.afterMark < n {
			k = i + 1
		}
	}
	last := metaState{k: k, db: r.commits[k].after, snap: &r.commits[k].snap}
	if k+1 < len(r.commits) {
		if next := r.commits[k+1]; next.beforeMark < n {
			old := metaState{k: k, db: next.before, snap: &r.commits[k].snap}
			return []metaState{old, {k: k + 1, db: next.after, snap: &r.commits[k+1].snap}}
		}
	}
	return []metaState{last}
}

// ckptStates returns the meta.db states a crash after the first n log
// entries may leave on an image with a log: the last checkpoint completed
// before n, and inside a checkpoint's transaction also the one before.
func (r *recording) ckptStates(n int) []metaState {
	k := 0
	for i, c := range r.ckpts {
		if c.afterMark >= 0 && c.afterMark < n {
			k = i + 1
		}
	}
	db := r.commits[0].after
	if k > 0 {
		db = r.ckpts[k-1].after
	}
	if k < len(r.ckpts) {
		if next := r.ckpts[k]; next.beforeMark < n {
			return []metaState{{k: k, db: next.before}, {k: k + 1, db: next.after}}
		}
	}
	return []metaState{{k: k, db: db}}
}

// walCommits returns the commits a crash after the first n log entries
// may leave on an image with a log, by index into r.commits: at least the
// last whose flush returned (AfterCommit), at most the last whose record
// was written (BeforeCommit).
func (r *recording) walCommits(n int) (lo, hi int) {
	for i, c := range r.commits[1:] {
		if c.afterMark >= 0 && c.afterMark < n {
			lo = i + 1
		}
		if c.beforeMark >= 0 && c.beforeMark < n {
			hi = i + 1
		}
	}
	return lo, hi
}

// subset is a choice of the unflushed writes that survive a crash.
type subset struct {
	keep map[int]bool // by log index
	name string       // how it was chosen
}

// subsets returns the subsets of the unflushed writes u to check: none,
// all, and up to extra more, distinct — random halves, in-order prefixes
// (a disk that does not reorder), random sparse and dense picks — drawn
// from rng.
func subsets(u []int, extra int, rng *rand.Rand) []subset {
	seen := map[string]bool{}
	var out []subset
	add := func(name string, in func(j int) bool) {
		key := make([]byte, len(u))
		keep := map[int]bool{}
		for j, i := range u {
			if in(j) {
				key[j] = 1
				keep[i] = true
			}
		}
		if !seen[string(key)] {
			seen[string(key)] = true
			out = append(out, subset{keep, fmt.Sprintf("%s (%d of %d unflushed writes)", name, len(keep), len(u))})
		}
	}
	add("none", func(int) bool { return false })
	add("all", func(int) bool { return true })
	for t := 0; t < 4*extra && len(out) < extra+2; t++ {
		switch t % 3 {
		case 0:
			add("random half", func(int) bool { return rng.IntN(2) == 0 })
		case 1:
			cut := rng.IntN(len(u) + 1)
			add(fmt.Sprintf("prefix %d", cut), func(j int) bool { return j < cut })
		default:
			p := rng.Float64()
			add(fmt.Sprintf("random p=%.2f", p), func(int) bool { return rng.Float64() < p })
		}
	}
	return out
}

// states returns every crash state of the recording to check.
func (r *recording) states(extra int) []crashState {
	rng := rand.New(rand.NewPCG(r.seed, 0x7375627365747321))
	var out []crashState
	for _, n := range r.crashPoints() {
		u := blockdev.Unflushed(r.log, n)
		for _, m := range r.metaStates(n) {
			for _, s := range subsets(u, extra, rng) {
				out = append(out, crashState{n: n, meta: m, sub: s})
			}
		}
	}
	return out
}

// lastOp returns the last op that started before a crash after the first
// n log entries.
func (r *recording) lastOp(n int) int {
	for i := len(r.w.ops) - 1; i > 0; i-- {
		if r.w.ops[i].start < n {
			return i
		}
	}
	return 0
}

// describe says where crash state s is, for a violation report.
func (r *recording) describe(s crashState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, crash after log entry %d of %d", r.seed, s.n, len(r.log))
	switch {
	case s.n == len(r.log):
		b.WriteString(" (the end)")
	case r.log[s.n].Kind == blockdev.EntryFlush:
		b.WriteString(" (just before a flush completed)")
	case r.log[s.n].Kind == blockdev.EntryMark:
		fmt.Fprintf(&b, " (%s)", r.log[s.n].Label)
	}
	if i := r.lastOp(s.n); i > 0 {
		o := r.w.ops[i]
		state := "during"
		if o.end >= 0 && o.end < s.n {
			state = "after"
		}
		fmt.Fprintf(&b, ", %s op %d (%v)", state, i, o.op)
	}
	if r.wal {
		fmt.Fprintf(&b, "; meta.db of checkpoint %d; unflushed writes kept: %s", s.meta.k, s.sub.name)
	} else {
		fmt.Fprintf(&b, "; meta.db of commit %d (during op %d); unflushed writes kept: %s", s.meta.k, s.meta.snap.op, s.sub.name)
	}
	return b.String()
}
