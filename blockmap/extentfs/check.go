package extentfs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
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

	var used int64
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
		used += sum
	}
	if a.first+nfree+nheld+used != a.total {
		bad("reserved %d + free %d + quarantined %d + used %d != total %d", a.first, nfree, nheld, used, a.total)
	}

	slices.SortFunc(all, func(x, y owned) int { return cmp.Compare(x.start, y.start) })
	for i := 1; i < len(all); i++ {
		// Compare with the run reaching furthest so far, not just the
		// previous one, so a long run covering several others is caught.
		p, x := all[i-1], all[i]
		if x.start < p.end() {
			bad("block %d owned by %s and by %s", x.start, p.owner, x.owner)
		}
		if p.end() > x.end() {
			all[i] = p
		}
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
