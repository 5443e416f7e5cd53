package extentfs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"

	"github.com/google/btree"

	"github.com/holefs/holefs/internal/lockcheck"
)

// run is a range of device blocks [start, start+count).
type run struct {
	start, count int64
}

func (r run) end() int64 { return r.start + r.count }

// allocReq asks for n blocks for one hole; goal is the block after the
// hole's preceding extent, or -1 when the hole has none.
type allocReq struct {
	goal, n int64
}

// allocator keeps the free space of the device as maximal free runs ordered
// by start block. Ordering by start is the only index the policy needs: the
// lowest free block is the tree's minimum and the run holding the goal is
// found by one descent.
type allocator struct {
	mu    lockcheck.Mutex    // RankAllocator; taken inside extent-map locks
	free  *btree.BTreeG[run] // guarded by mu; non-overlapping, non-adjacent
	nfree int64              // guarded by mu; sum of free run counts
	total int64              // device size in blocks; immutable
	first int64              // first allocatable block (1 on an image: block 0 is the superblock); immutable

	// quarantine holds freed blocks back until the commit that freed them
	// is durable (durable stores only; see package meta).
	quarantine bool         // immutable
	held       []run        // guarded by mu; freed since the last seal
	sealed     []sealedRuns // guarded by mu; sealed generations, oldest first
	gen        uint64       // guarded by mu; generation of held
	nheld      int64        // guarded by mu; blocks in held and sealed
	lateErrs   []error      // guarded by mu; double frees found leaving quarantine

	refs      refTree     // guarded by mu; reference counts of shared (cloned) blocks
	anyShared atomic.Bool // refs is not empty; read without mu on every Lookup

	// log makes allocation log-structured: every request is served from
	// the log head onward, wrapping at the end of the device, so writes
	// go out sequentially wherever the file's previous blocks are.
	log  bool  // immutable
	head int64 // guarded by mu; the next block the log writes

	// cow writes every written block out of place without the log's
	// allocation policy: a block's content never changes while a
	// committed map points at it, which is what makes data checksums
	// crash-safe (Restore with data checksums).
	cow bool // immutable
}

// outOfPlace reports whether every write of a written block moves.
func (a *allocator) outOfPlace() bool { return a.log || a.cow }

// sealedRuns are the blocks freed in one quarantine generation.
type sealedRuns struct {
	gen  uint64
	runs []run
}

func newAllocator(nblocks int64) *allocator {
	a := &allocator{
		free:  btree.NewG(32, func(x, y run) bool { return x.start < y.start }),
		total: nblocks,
		refs:  newRefTree(),
	}
	a.mu.Init(lockcheck.RankAllocator)
	if nblocks > 0 {
		a.free.ReplaceOrInsert(run{0, nblocks})
		a.nfree = nblocks
	}
	return a
}

// statfs counts quarantined blocks as free: they are, as soon as the next
// commit is durable, and an allocation that needs them forces that commit.
func (a *allocator) statfs() (total, free int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total - a.first, a.nfree + a.nheld
}

// alloc satisfies every request or none: the total is checked against the
// free count before anything is taken, so a failed Allocate or ZeroRange
// leaves both the file and the free space exactly as they were. Requests are
// served in order, each from its goal first and then lowest-first.
func (a *allocator) alloc(reqs []allocReq) ([][]run, error) {
	var need int64
	for _, r := range reqs {
		need += r.n
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if need > a.nfree {
		if a.nheld > 0 {
			return nil, fmt.Errorf("need %d blocks, %d free and %d waiting for a commit: %w", need, a.nfree, a.nheld, syscall.ENOSPC)
		}
		return nil, fmt.Errorf("need %d blocks, %d free: %w", need, a.nfree, syscall.ENOSPC)
	}
	out := make([][]run, len(reqs))
	for i, r := range reqs {
		if a.log {
			out[i] = a.takeLog(r.n)
			continue
		}
		out[i] = a.take(r.goal, r.n)
	}
	return out, nil
}

// takeLog takes n blocks from the log head onward, wrapping once; the
// caller checked nfree >= n.
func (a *allocator) takeLog(n int64) []run {
	var got []run
	for n > 0 {
		var f run
		ok := false
		if p, found := a.runAtOrBefore(a.head); found && p.end() > a.head {
			f, ok = run{a.head, p.end() - a.head}, true
			a.carve(p, f)
		} else {
			a.free.AscendGreaterOrEqual(run{start: a.head}, func(r run) bool {
				f, ok = r, true
				return false
			})
			if !ok {
				f, ok = a.free.Min()
			}
			if !ok {
				break // unreachable while nfree is right
			}
			a.carve(f, f)
		}
		k := min(n, f.count)
		if k < f.count {
			a.insertFree(run{f.start + k, f.count - k})
		}
		if l := len(got) - 1; l >= 0 && got[l].end() == f.start {
			got[l].count += k
		} else {
			got = append(got, run{f.start, k})
		}
		n -= k
		a.head = f.start + k
	}
	return got
}

// take removes n blocks from the free set; the caller checked nfree >= n.
// Cost: O(log F) per run returned, F = number of free runs.
func (a *allocator) take(goal, n int64) []run {
	var got []run
	add := func(r run) {
		if k := len(got) - 1; k >= 0 && got[k].end() == r.start {
			got[k].count += r.count
			return
		}
		got = append(got, r)
	}
	if goal >= 0 && goal < a.total {
		if f, ok := a.runAtOrBefore(goal); ok && f.end() > goal {
			k := min(n, f.end()-goal)
			a.carve(f, run{goal, k})
			add(run{goal, k})
			n -= k
		}
	}
	for n > 0 {
		f, ok := a.free.Min()
		if !ok {
			// Unreachable while nfree is right; stop rather than spin.
			break
		}
		k := min(n, f.count)
		a.carve(f, run{f.start, k})
		add(run{f.start, k})
		n -= k
	}
	return got
}

// carve removes r, which lies inside the free run f, from the free set.
func (a *allocator) carve(f, r run) {
	a.free.Delete(f)
	if r.start > f.start {
		a.free.ReplaceOrInsert(run{f.start, r.start - f.start})
	}
	if r.end() < f.end() {
		a.free.ReplaceOrInsert(run{r.end(), f.end() - r.end()})
	}
	a.nfree -= r.count
}

func (a *allocator) runAtOrBefore(b int64) (run, bool) {
	var got run
	var ok bool
	a.free.DescendLessOrEqual(run{start: b}, func(r run) bool {
		got, ok = r, true
		return false
	})
	return got, ok
}

// release returns runs to the free set. A block that is already free, or
// outside the device, means a block map is corrupt (a block owned twice, or
// a map that outlived its blocks); it is reported as EUCLEAN naming the
// block, and only the blocks that were really in use are freed, so the free
// set never holds a block twice and the rest of the operation can finish.
//
// In a quarantining allocator the runs are held until unquarantine
// releases their generation; the double-free check happens then.
func (a *allocator) release(runs []run) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, r := range runs {
		if r.count <= 0 {
			continue
		}
		if r.start < a.first || r.end() > a.total {
			errs = append(errs, fmt.Errorf("extentfs: free blocks [%d, %d): outside the device's blocks [%d, %d): %w",
				r.start, r.end(), a.first, a.total, syscall.EUCLEAN))
			lo, hi := max(r.start, a.first), min(r.end(), a.total)
			if lo >= hi {
				continue
			}
			r = run{lo, hi - lo}
		}
		freed := a.refs.dropRef(r)
		a.anyShared.Store(a.refs.t.Len() > 0)
		for _, f := range freed {
			if a.quarantine {
				a.held = append(a.held, f)
				a.nheld += f.count
				continue
			}
			if err := a.releaseRun(f); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// share adds a reference to every block of runs (a clone).
func (a *allocator) share(runs []run) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range runs {
		a.refs.addRef(r)
	}
	a.anyShared.Store(a.refs.t.Len() > 0)
}

// firstShared returns the first shared run inside r.
func (a *allocator) firstShared(r run) (run, bool) {
	if !a.anyShared.Load() {
		return run{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refs.firstShared(r)
}

// seal closes the current quarantine generation and returns its number.
func (a *allocator) seal() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.gen
	if len(a.held) > 0 {
		a.sealed = append(a.sealed, sealedRuns{g, a.held})
		a.held = nil
	}
	a.gen++
	return g
}

// unquarantine frees the blocks of every sealed generation <= gen. A
// double free found here is kept for CheckInvariants.
func (a *allocator) unquarantine(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := 0
	for _, s := range a.sealed {
		if s.gen > gen {
			break
		}
		for _, r := range s.runs {
			a.nheld -= r.count
			if err := a.releaseRun(r); err != nil && len(a.lateErrs) < 10 {
				a.lateErrs = append(a.lateErrs, err)
			}
		}
		k++
	}
	a.sealed = a.sealed[k:]
}

// sealedUpTo returns the blocks of every sealed generation <= gen, sorted
// and merged: what unquarantine(gen) frees.
func (a *allocator) sealedUpTo(gen uint64) []run {
	a.mu.Lock()
	var runs []run
	for _, s := range a.sealed {
		if s.gen > gen {
			break
		}
		runs = append(runs, s.runs...)
	}
	a.mu.Unlock()
	slices.SortFunc(runs, func(x, y run) int { return cmp.Compare(x.start, y.start) })
	out := runs[:0]
	for _, r := range runs {
		if k := len(out) - 1; k >= 0 && out[k].end() >= r.start {
			out[k].count = max(out[k].end(), r.end()) - out[k].start
			continue
		}
		out = append(out, r)
	}
	return out
}

// trim calls discard on every free run, or part of one, inside [lo, hi),
// holding the allocator lock through each call so that no block is
// allocated (and written) while it is being discarded. It returns the
// blocks discarded and the first error, after which it stops.
func (a *allocator) trim(lo, hi int64, discard func(start, count int64) error) (int64, error) {
	var n int64
	for pos := max(lo, a.first); pos < hi; {
		a.mu.Lock()
		var f run
		ok := false
		if p, found := a.runAtOrBefore(pos); found && p.end() > pos {
			f, ok = p, true
		} else {
			a.free.AscendGreaterOrEqual(run{start: pos}, func(r run) bool {
				f, ok = r, true
				return false
			})
		}
		if !ok || f.start >= hi {
			a.mu.Unlock()
			break
		}
		start, end := max(f.start, pos), min(f.end(), hi)
		err := discard(start, end-start)
		a.mu.Unlock()
		if err != nil {
			return n, err
		}
		n += end - start
		pos = end
	}
	return n, nil
}

// held reports how many freed blocks wait in quarantine.
func (a *allocator) quarantined() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nheld
}

// releaseRun frees the parts of r that are in use and reports the first
// block of r that was already free.
func (a *allocator) releaseRun(r run) error {
	var overlaps []run
	if p, ok := a.runAtOrBefore(r.start); ok && p.end() > r.start {
		overlaps = append(overlaps, p)
	}
	a.free.AscendRange(run{start: r.start + 1}, run{start: r.end()}, func(f run) bool {
		overlaps = append(overlaps, f)
		return true
	})
	if len(overlaps) == 0 {
		a.insertFree(r)
		return nil
	}
	first := max(overlaps[0].start, r.start)
	pos := r.start
	for _, f := range overlaps {
		if f.start > pos {
			a.insertFree(run{pos, f.start - pos})
		}
		pos = max(pos, f.end())
	}
	if pos < r.end() {
		a.insertFree(run{pos, r.end() - pos})
	}
	return fmt.Errorf("extentfs: free blocks [%d, %d): block %d is already free: %w",
		r.start, r.end(), first, syscall.EUCLEAN)
}

// insertFree adds a run known not to overlap the free set, merging it with
// its neighbours so that the lowest-first search sees maximal runs.
func (a *allocator) insertFree(r run) {
	a.nfree += r.count
	if p, ok := a.runAtOrBefore(r.start); ok && p.end() == r.start {
		a.free.Delete(p)
		r = run{p.start, p.count + r.count}
	}
	if nx, ok := a.free.Get(run{start: r.end()}); ok {
		a.free.Delete(nx)
		r.count += nx.count
	}
	a.free.ReplaceOrInsert(r)
}
