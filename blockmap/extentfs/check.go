package extentfs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
)

// maxProblems bounds the report of CheckInvariants: one corruption tends to
// cause many, and the first few say what went wrong.
const maxProblems = 20

// CheckInvariants checks the whole filesystem, like fsck: every extent of
// every live file lies inside the device and within MaxPages; each file's
// extents are sorted, non-overlapping and maximal (no two adjacent extents
// that join); each file's block count matches its extents; the free set is
// sorted, non-overlapping and merged; no block is owned twice, by two files
// or by a file and the free set; and free + used == total. It returns nil
// or the problems found, wrapping EUCLEAN.
//
// It holds every file's extent-map lock (shared, in file-id order) and the
// allocator lock at once, so it sees one consistent state and may be called
// while other goroutines use the files. Cost: O(N log N) for N extents.
func (fs *FS) CheckInvariants() error {
	// filesMu is held throughout so that no file can be created, and so
	// allocate, behind the check's back.
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	files := make([]*File, 0, len(fs.files))
	for _, f := range fs.files {
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b *File) int { return cmp.Compare(a.id, b.id) })
	for _, f := range files {
		f.mu.RLock()
		defer f.mu.RUnlock()
	}
	a := fs.alloc
	a.mu.Lock()
	defer a.mu.Unlock()

	var problems []error
	bad := func(format string, args ...any) {
		if len(problems) < maxProblems {
			problems = append(problems, fmt.Errorf(format, args...))
		}
	}

	// owned is every block run with its owner, to find blocks owned twice.
	type owned struct {
		run
		owner string
	}
	var all []owned

	var nfree int64
	prevEnd := int64(-1)
	a.free.Ascend(func(r run) bool {
		switch {
		case r.count <= 0:
			bad("free run at block %d has count %d", r.start, r.count)
		case r.start < a.first || r.end() > a.total:
			bad("free run [%d, %d) outside the device's blocks [%d, %d)", r.start, r.end(), a.first, a.total)
		case r.start < prevEnd:
			bad("free runs overlap at block %d", r.start)
		case r.start == prevEnd:
			bad("free runs not merged at block %d", r.start)
		}
		prevEnd = r.end()
		nfree += r.count
		all = append(all, owned{r, "free space"})
		return true
	})
	if nfree != a.nfree {
		bad("free runs hold %d blocks, free count says %d", nfree, a.nfree)
	}
	var nheld int64
	for _, rs := range append([][]run{a.held}, sealedLists(a.sealed)...) {
		for _, r := range rs {
			nheld += r.count
			all = append(all, owned{r, "quarantine"})
		}
	}
	for _, err := range a.lateErrs {
		bad("%v", err)
	}
	if nheld != a.nheld {
		bad("quarantine holds %d blocks, its count says %d", nheld, a.nheld)
	}

	for _, f := range files {
		if f.released {
			bad("file %d: released but still registered", f.id)
			continue
		}
		var sum int64
		var prev extent
		first := true
		f.tree.t.Ascend(func(x extent) bool {
			switch {
			case x.count <= 0:
				bad("file %d: extent at page %d has count %d", f.id, x.page, x.count)
			case x.page < 0 || x.end() > MaxPages:
				bad("file %d: extent [%d, %d) outside the file size limit", f.id, x.page, x.end())
			case x.block < a.first || x.block+x.count > a.total:
				bad("file %d: extent at page %d maps blocks [%d, %d) outside device of %d blocks",
					f.id, x.page, x.block, x.block+x.count, a.total)
			case !first && x.page < prev.end():
				bad("file %d: extents overlap at page %d", f.id, x.page)
			case !first && prev.joins(x):
				bad("file %d: extents at pages %d and %d not merged", f.id, prev.page, x.page)
			}
			prev, first = x, false
			sum += x.count
			all = append(all, owned{run{x.block, x.count}, fmt.Sprintf("file %d page %d", f.id, x.page)})
			return true
		})
		if sum != f.blocks {
			bad("file %d: extents hold %d blocks, block count says %d", f.id, sum, f.blocks)
		}
		var cows int64
		for _, fork := range []struct {
			name string
			t    extentTree
		}{{"cow", f.cow}, {"in-flight", f.inflight}} {
			fork.t.t.Ascend(func(x extent) bool {
				cows += x.count
				all = append(all, owned{run{x.block, x.count}, fmt.Sprintf("file %d %s page %d", f.id, fork.name, x.page)})
				return true
			})
		}
		if cows != f.cowCount {
			bad("file %d: CoW forks hold %d blocks, their count says %d", f.id, cows, f.cowCount)
		}
	}

	// Sweep the block space: every block is reserved, free, quarantined,
	// reserved for a CoW write, or mapped by data forks exactly as many
	// times as its reference count says (1 when it is not in the tree).
	type edge struct {
		at    int64
		delta int
		data  bool
	}
	var edges []edge
	for _, o := range all {
		data := strings.HasPrefix(o.owner, "file ") && !strings.Contains(o.owner, " cow ") && !strings.Contains(o.owner, " in-flight ")
		edges = append(edges, edge{o.start, 1, data}, edge{o.end(), -1, data})
	}
	a.refs.t.Ascend(func(r refRun) bool {
		if r.count <= 0 || r.refs < 2 {
			bad("reference count run at block %d: count %d, refs %d", r.start, r.count, r.refs)
		}
		edges = append(edges, edge{r.start, 0, false}, edge{r.end(), 0, false})
		return true
	})
	slices.SortFunc(edges, func(x, y edge) int { return cmp.Compare(x.at, y.at) })
	var dataN, otherN int
	var distinct int64
	for i := 0; i < len(edges); {
		at := edges[i].at
		for ; i < len(edges) && edges[i].at == at; i++ {
			if edges[i].data {
				dataN += edges[i].delta
			} else {
				otherN += edges[i].delta
			}
		}
		if i == len(edges) {
			break
		}
		next := edges[i].at
		if next == at {
			continue
		}
		refs := int64(1)
		if rr, ok := a.refs.containing(at); ok {
			refs = rr.refs
		}
		switch {
		case otherN > 1 || otherN == 1 && dataN > 0:
			bad("blocks [%d, %d) owned twice (free, quarantined, reserved or mapped)", at, next)
		case dataN > 0 && int64(dataN) != refs:
			bad("blocks [%d, %d) mapped %d times, reference count %d", at, next, dataN, refs)
		case dataN == 0 && refs != 1:
			bad("blocks [%d, %d) mapped by nobody but have reference count %d", at, next, refs)
		}
		if dataN > 0 {
			distinct += next - at
		}
	}
	var cowTotal int64
	for _, f := range files {
		cowTotal += f.cowCount
	}
	if a.first+nfree+nheld+distinct+cowTotal != a.total {
		bad("reserved %d + free %d + quarantined %d + mapped %d + CoW %d != total %d", a.first, nfree, nheld, distinct, cowTotal, a.total)
	}

	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("extentfs: invariants broken: %w: %w", syscall.EUCLEAN, errors.Join(problems...))
}

func sealedLists(ss []sealedRuns) [][]run {
	out := make([][]run, len(ss))
	for i, s := range ss {
		out[i] = s.runs
	}
	return out
}
