package pagecache

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"
)

// heightFor returns the height an index needs to hold page idx.
func heightFor(idx int64) int {
	h := 1
	for idx >= int64(1)<<(indexBits*h) {
		h++
	}
	return h
}

// nodeCount counts the nodes reachable from the root, checking every
// inner node's count against its non-nil slots on the way.
func nodeCount(t *testing.T, x *pageIndex) int {
	t.Helper()
	r := x.root.Load()
	if r == nil {
		return 0
	}
	var walk func(n *indexNode, level int) int
	walk = func(n *indexNode, level int) int {
		nonNil, total := 0, 1
		for i := range n.slots {
			ptr := atomic.LoadPointer(&n.slots[i])
			if ptr == nil {
				continue
			}
			nonNil++
			if level > 0 {
				total += walk((*indexNode)(ptr), level-1)
			}
		}
		if nonNil != n.count {
			t.Fatalf("node at level %d: count %d, %d non-nil slots", level, n.count, nonNil)
		}
		if nonNil == 0 {
			t.Fatalf("empty node at level %d left in the tree (not pruned)", level)
		}
		return total
	}
	return walk(r.node, r.height-1)
}

func walkIndexes(x *pageIndex, start, end int64) []int64 {
	var got []int64
	x.walk(start, end, func(p *Page) bool {
		got = append(got, p.index)
		return true
	})
	return got
}

func TestIndexInsertLookupRemove(t *testing.T) {
	tests := []struct {
		name    string
		indexes []int64
	}{
		{"zero", []int64{0}},
		{"last of first leaf", []int64{63}},
		{"first of second leaf", []int64{64}},
		{"last of height 2", []int64{4095}},
		{"first of height 3", []int64{4096}},
		{"1<<30", []int64{1 << 30}},
		{"max", []int64{maxPageIdx}},
		{"sparse ascending", []int64{0, 63, 64, 4095, 1 << 30}},
		{"sparse descending", []int64{1 << 30, 4095, 64, 63, 0}},
		{"grow from a high page", []int64{1 << 30, 0, maxPageIdx, 1}},
		{"dense leaf", []int64{0, 1, 2, 3, 4, 5, 6, 7, 62, 63, 64, 65}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x pageIndex
			pages := map[int64]*Page{}
			want := int64(0)
			for _, i := range tt.indexes {
				p := &Page{index: i}
				if !x.insert(p) {
					t.Fatalf("insert(%d) = false on an index without it", i)
				}
				pages[i] = p
				want = max(want, i)
				if h := x.root.Load().height; h != heightFor(want) {
					t.Fatalf("after insert(%d): height %d, want %d", i, h, heightFor(want))
				}
			}
			for i, p := range pages {
				if got := x.lookup(i); got != p {
					t.Fatalf("lookup(%d) = %p, want %p", i, got, p)
				}
				if x.insert(&Page{index: i}) {
					t.Fatalf("insert of a second page at %d = true", i)
				}
				if got := x.lookup(i); got != p {
					t.Fatalf("lookup(%d) after a refused insert = %p, want the first page", i, got)
				}
				for _, n := range []int64{i - 1, i + 1, i + 64, i + 4096} {
					if _, ok := pages[n]; !ok && n >= 0 && x.lookup(n) != nil {
						t.Fatalf("lookup(%d) = a page; only %v were inserted", n, tt.indexes)
					}
				}
				// A different page at the same index is not removed.
				if x.remove(&Page{index: i}) {
					t.Fatalf("remove of a stranger page at %d = true", i)
				}
			}
			if x.lookup(maxPageIdx+1) != nil || x.lookup(1<<50) != nil {
				t.Fatal("lookup past the largest index found a page")
			}
			sorted := slices.Sorted(func(yield func(int64) bool) {
				for i := range pages {
					if !yield(i) {
						return
					}
				}
			})
			if got := walkIndexes(&x, 0, maxPageIdx+1); !slices.Equal(got, sorted) {
				t.Fatalf("walk(all) = %v, want %v", got, sorted)
			}
			nodeCount(t, &x)
			// Remove in insertion order; every removal prunes what it emptied.
			for k, i := range tt.indexes {
				if !x.remove(pages[i]) {
					t.Fatalf("remove(%d) = false", i)
				}
				if x.remove(pages[i]) {
					t.Fatalf("second remove(%d) = true", i)
				}
				if x.lookup(i) != nil {
					t.Fatalf("lookup(%d) after remove found a page", i)
				}
				left := tt.indexes[k+1:]
				for _, j := range left {
					if x.lookup(j) != pages[j] {
						t.Fatalf("lookup(%d) after removing %d lost the page", j, i)
					}
				}
				if len(left) == 1 {
					// One page left: the tree is a single path.
					if n, h := nodeCount(t, &x), x.root.Load().height; n != h {
						t.Fatalf("one page left: %d nodes, want %d (one per level)", n, h)
					}
				}
			}
			if x.root.Load() != nil {
				t.Fatal("root not nil after removing every page")
			}
			if got := walkIndexes(&x, 0, maxPageIdx+1); len(got) != 0 {
				t.Fatalf("walk of an empty index = %v", got)
			}
		})
	}
}

func TestIndexWalkBounds(t *testing.T) {
	var x pageIndex
	idx := []int64{0, 1, 63, 64, 65, 127, 128, 4095, 4096, 5000, 1 << 20, 1 << 30}
	for _, i := range idx {
		x.insert(&Page{index: i})
	}
	tests := []struct {
		start, end int64
		want       []int64
	}{
		{0, maxPageIdx + 1, idx},
		{0, 1, []int64{0}},
		{1, 64, []int64{1, 63}},
		{63, 65, []int64{63, 64}},
		{64, 64, nil},
		{65, 64, nil},
		{2, 63, nil},
		{66, 127, nil},
		{127, 4097, []int64{127, 128, 4095, 4096}},
		{4097, 1 << 20, []int64{5000}},
		{1<<20 + 1, 1 << 30, nil},
		{1 << 30, 1<<30 + 1, []int64{1 << 30}},
		{1<<30 + 1, maxPageIdx + 1, nil},
		{0, 1 << 50, idx}, // end past the span is clipped
	}
	for _, tt := range tests {
		if got := walkIndexes(&x, tt.start, tt.end); !slices.Equal(got, tt.want) {
			t.Errorf("walk(%d, %d) = %v, want %v", tt.start, tt.end, got, tt.want)
		}
	}
	// fn returning false stops the walk, across leaves and levels.
	for stop := 1; stop <= len(idx); stop++ {
		var got []int64
		x.walk(0, maxPageIdx+1, func(p *Page) bool {
			got = append(got, p.index)
			return len(got) < stop
		})
		if !slices.Equal(got, idx[:stop]) {
			t.Fatalf("walk stopped after %d = %v, want %v", stop, got, idx[:stop])
		}
	}
}

// TestIndexModel checks the index against a map under random inserts,
// removes, lookups and walks.
func TestIndexModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var x pageIndex
		model := map[int64]*Page{}
		genIdx := rapid.OneOf(rapid.Int64Range(0, 200), rapid.Int64Range(0, 1<<20), rapid.Int64Range(0, maxPageIdx))
		var known []int64
		pick := func(rt *rapid.T) int64 {
			if len(known) > 0 && rapid.Bool().Draw(rt, "known") {
				return rapid.SampledFrom(known).Draw(rt, "idx")
			}
			i := genIdx.Draw(rt, "idx")
			known = append(known, i)
			return i
		}
		rt.Repeat(map[string]func(*rapid.T){
			"insert": func(rt *rapid.T) {
				i := pick(rt)
				p := &Page{index: i}
				_, had := model[i]
				if got := x.insert(p); got == had {
					rt.Fatalf("insert(%d) = %v with the page present: %v", i, got, had)
				}
				if !had {
					model[i] = p
				}
			},
			"remove": func(rt *rapid.T) {
				i := pick(rt)
				p, had := model[i]
				if !had {
					p = &Page{index: i}
				}
				if got := x.remove(p); got != had {
					rt.Fatalf("remove(%d) = %v, want %v", i, got, had)
				}
				delete(model, i)
			},
			"lookup": func(rt *rapid.T) {
				i := pick(rt)
				if got := x.lookup(i); got != model[i] {
					rt.Fatalf("lookup(%d) = %p, want %p", i, got, model[i])
				}
			},
			"walk": func(rt *rapid.T) {
				a, b := pick(rt), pick(rt)
				var want []int64
				for i := range model {
					if i >= a && i < b {
						want = append(want, i)
					}
				}
				slices.Sort(want)
				if got := walkIndexes(&x, a, b); !slices.Equal(got, want) {
					rt.Fatalf("walk(%d, %d) = %v, want %v", a, b, got, want)
				}
			},
			"": func(rt *rapid.T) {
				if len(model) == 0 && x.root.Load() != nil {
					rt.Fatalf("empty index keeps a root")
				}
			},
		})
	})
}

// TestIndexConcurrentLookup runs lockless lookups and walks against
// inserts and removes (serialized by a mutex, as the index lock does) that
// grow the tree and prune it. A reader must see either nothing or the page
// of the index it asked for, never a node as a page or a torn pointer;
// -race checks the memory ordering.
func TestIndexConcurrentLookup(t *testing.T) {
	var x pageIndex
	var mu sync.Mutex
	hot := []int64{0, 1, 63, 64, 4095, 4096, 70000, 1 << 30, maxPageIdx}
	// Pages that stay put must be found by every lookup, whatever happens
	// around them.
	stay := []int64{5, 4100}
	for _, i := range stay {
		x.insert(&Page{index: i})
	}
	const readers = 4
	const rounds = 3000
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, readers)
	report := func(msg string) {
		select {
		case errs <- msg:
		default:
		}
	}
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for !stop.Load() {
				i := hot[rng.IntN(len(hot))]
				if p := x.lookup(i); p != nil && p.index != i {
					report("lookup returned a page of another index")
					return
				}
				for _, s := range stay {
					if p := x.lookup(s); p == nil || p.index != s {
						report("lookup lost a page that was never removed")
						return
					}
				}
				prev := int64(-1)
				sawStay := 0
				x.walk(0, maxPageIdx+1, func(p *Page) bool {
					if p.index <= prev {
						report("walk out of order")
					}
					if slices.Contains(stay, p.index) {
						sawStay++
					}
					prev = p.index
					return true
				})
				if sawStay != len(stay) {
					report("walk missed a page that was never removed")
					return
				}
			}
		}(uint64(r))
	}
	rng := rand.New(rand.NewPCG(42, 2))
	live := map[int64]*Page{}
	for n := 0; n < rounds; n++ {
		i := hot[rng.IntN(len(hot))]
		mu.Lock()
		if p, ok := live[i]; ok {
			x.remove(p)
			delete(live, i)
		} else {
			p := &Page{index: i}
			x.insert(p)
			live[i] = p
		}
		mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
