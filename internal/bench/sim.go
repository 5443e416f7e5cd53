package bench

// A page-cache trace simulator, hit ratio only: exact LRU, and CLOCK
// (second chance) with the engine's choices. It exists because the engine's
// eviction policy cannot be swapped from outside: churn compares the
// engine's measured hit ratio with both policies replayed on the same
// access trace.
//
// Pages are numbered [0, pages). Both policies keep their pages on an
// intrusive doubly linked list over arrays indexed by page number, with a
// sentinel at index pages, so a step costs O(1) and no allocation.

type pageList struct {
	prev, next []int32
	in         []bool
	sentinel   int32
	n          int
}

func newPageList(pages int) *pageList {
	l := &pageList{prev: make([]int32, pages+1), next: make([]int32, pages+1), in: make([]bool, pages), sentinel: int32(pages)}
	l.prev[pages], l.next[pages] = int32(pages), int32(pages)
	return l
}

func (l *pageList) remove(p int32) {
	l.next[l.prev[p]] = l.next[p]
	l.prev[l.next[p]] = l.prev[p]
	l.in[p] = false
	l.n--
}

// pushBack puts p at the tail (most recent end).
func (l *pageList) pushBack(p int32) {
	s := l.sentinel
	l.prev[p] = l.prev[s]
	l.next[p] = s
	l.next[l.prev[s]] = p
	l.prev[s] = p
	l.in[p] = true
	l.n++
}

func (l *pageList) front() int32 { return l.next[l.sentinel] }

// simLRU replays trace through an exact LRU cache of capacity pages and
// returns the hits.
func simLRU(trace []int32, pages, capacity int) int64 {
	l := newPageList(pages)
	var hits int64
	for _, p := range trace {
		if l.in[p] {
			hits++
			l.remove(p)
			l.pushBack(p)
			continue
		}
		if l.n >= capacity {
			l.remove(l.front())
		}
		l.pushBack(p)
	}
	return hits
}

// simCLOCK replays trace through CLOCK as pagecache/cache.go runs it: the
// hand sweeps the file's pages in index order; a new page and every read
// (hit or miss) set the page's referenced bit; when a new page would exceed
// capacity, the hand evicts max(excess, batch) pages, sparing once a page
// whose referenced bit it clears; it gives up after 2 x cached pages
// cached pages passed (reclaim's budget).
func simCLOCK(trace []int32, pages, capacity, batch int) int64 {
	in := make([]bool, pages)
	ref := make([]bool, pages)
	cached, hand := 0, 0
	var hits int64
	for _, p := range trace {
		if in[p] {
			hits++
			ref[p] = true
			continue
		}
		if cached+1 > capacity {
			want := max(cached+1-capacity, batch)
			freed := 0
			for budget := 2 * cached; freed < want && budget > 0 && cached > 0; hand = (hand + 1) % pages {
				if !in[hand] {
					continue
				}
				budget--
				if ref[hand] {
					ref[hand] = false
					continue
				}
				in[hand] = false
				cached--
				freed++
			}
		}
		in[p], ref[p] = true, true
		cached++
	}
	return hits
}
