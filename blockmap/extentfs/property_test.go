package extentfs_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"syscall"
	"testing"

	"pgregory.net/rapid"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/extentfs"
)

// modelPage is what one allocated page of a model file holds.
type modelPage struct {
	written bool
	block   int64
}

// model is a page-at-a-time reimplementation of extentfs: a map per file
// and a bitmap allocator with the same policy (goal block first, then
// lowest). Because the policy is deterministic the model predicts exact
// block numbers, not just kinds, so a wrong goal, a lost merge or a leaked
// block all show up as a mismatch.
type model struct {
	used  []bool
	nfree int64
	files []map[int64]modelPage
}

func newModel(total int64, nfiles int) *model {
	md := &model{used: make([]bool, total), nfree: total}
	for range nfiles {
		md.files = append(md.files, map[int64]modelPage{})
	}
	return md
}

type modelHole struct{ page, count, goal int64 }

// holes mirrors the package's rule: a hole's goal is the block after the
// last allocated page before it, computed before anything is allocated.
func (md *model) holes(fi int, s, e int64) []modelHole {
	f := md.files[fi]
	var hs []modelHole
	for p := s; p < e; p++ {
		if _, ok := f[p]; ok {
			continue
		}
		if k := len(hs) - 1; k >= 0 && hs[k].page+hs[k].count == p {
			hs[k].count++
			continue
		}
		goal := int64(-1)
		for q := p - 1; q >= 0; q-- {
			if pg, ok := f[q]; ok {
				goal = pg.block + 1
				break
			}
		}
		hs = append(hs, modelHole{p, 1, goal})
	}
	return hs
}

func (md *model) take(goal, n int64) []int64 {
	var got []int64
	for b := goal; goal >= 0 && b < int64(len(md.used)) && !md.used[b] && n > 0; b++ {
		got = append(got, b)
		md.used[b] = true
		n--
	}
	for b := int64(0); b < int64(len(md.used)) && n > 0; b++ {
		if !md.used[b] {
			got = append(got, b)
			md.used[b] = true
			n--
		}
	}
	md.nfree -= int64(len(got))
	return got
}

// fill reports whether the holes of [s, e) fit; if so it allocates them.
func (md *model) fill(fi int, s, e int64) bool {
	hs := md.holes(fi, s, e)
	var need int64
	for _, h := range hs {
		need += h.count
	}
	if need > md.nfree {
		return false
	}
	for _, h := range hs {
		for i, b := range md.take(h.goal, h.count) {
			md.files[fi][h.page+int64(i)] = modelPage{block: b}
		}
	}
	return true
}

func (md *model) drop(fi int, p int64) {
	if pg, ok := md.files[fi][p]; ok {
		md.used[pg.block] = false
		md.nfree++
		delete(md.files[fi], p)
	}
}

func (md *model) pagesFrom(fi int, s int64) []int64 {
	var ps []int64
	for p := range md.files[fi] {
		if p >= s {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

func (md *model) shift(fi int, from, by int64) {
	f := md.files[fi]
	ps := md.pagesFrom(fi, from)
	moved := map[int64]modelPage{}
	for _, p := range ps {
		moved[p+by] = f[p]
		delete(f, p)
	}
	maps.Copy(f, moved)
}

func (md *model) lookup(fi int, p int64) (blockmap.Kind, int64) {
	pg, ok := md.files[fi][p]
	switch {
	case !ok:
		return blockmap.Hole, -1
	case pg.written:
		return blockmap.Mapped, pg.block
	}
	return blockmap.Unwritten, pg.block
}

// propState is one run of the property test: the real store and the model
// side by side.
type propState struct {
	fs    *extentfs.FS
	files []*extentfs.File
	md    *model
	total int64
}

const propRange = 100 // pages used by generated operations

func (ps *propState) pick(t *rapid.T) (int, int64, int64) {
	fi := rapid.IntRange(0, len(ps.files)-1).Draw(t, "file")
	index := rapid.Int64Range(0, propRange-1).Draw(t, "index")
	n := rapid.Int64Range(1, 30).Draw(t, "n")
	return fi, index, n
}

func wantNoErr(t *rapid.T, what string, err error) {
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (ps *propState) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"allocate": func(t *rapid.T) {
			fi, i, n := ps.pick(t)
			err := ps.files[fi].Allocate(i, n)
			if ps.md.fill(fi, i, i+n) {
				wantNoErr(t, fmt.Sprintf("Allocate(%d, %d)", i, n), err)
			} else if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Allocate(%d, %d): err = %v, model says ENOSPC", i, n, err)
			}
		},
		"markwritten": func(t *rapid.T) {
			fi, i, n := ps.pick(t)
			wantNoErr(t, fmt.Sprintf("MarkWritten(%d, %d)", i, n), ps.files[fi].MarkWritten(i, n))
			for p := i; p < i+n; p++ {
				if pg, ok := ps.md.files[fi][p]; ok {
					pg.written = true
					ps.md.files[fi][p] = pg
				}
			}
		},
		"punch": func(t *rapid.T) {
			fi, i, n := ps.pick(t)
			wantNoErr(t, fmt.Sprintf("Punch(%d, %d)", i, n), ps.files[fi].Punch(i, n))
			for p := i; p < i+n; p++ {
				ps.md.drop(fi, p)
			}
		},
		"zerorange": func(t *rapid.T) {
			fi, i, n := ps.pick(t)
			err := ps.files[fi].ZeroRange(i, n)
			if !ps.md.fill(fi, i, i+n) {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("ZeroRange(%d, %d): err = %v, model says ENOSPC", i, n, err)
				}
				return
			}
			wantNoErr(t, fmt.Sprintf("ZeroRange(%d, %d)", i, n), err)
			for p := i; p < i+n; p++ {
				pg := ps.md.files[fi][p]
				pg.written = false
				ps.md.files[fi][p] = pg
			}
		},
		"collapse": func(t *rapid.T) {
			fi, i, n := ps.pick(t)
			wantNoErr(t, fmt.Sprintf("Collapse(%d, %d)", i, n), ps.files[fi].Collapse(i, n))
			for p := i; p < i+n; p++ {
				ps.md.drop(fi, p)
			}
			ps.md.shift(fi, i+n, -n)
		},
		"insert": func(t *rapid.T) {
			fi, i, n := ps.pick(t)
			wantNoErr(t, fmt.Sprintf("Insert(%d, %d)", i, n), ps.files[fi].Insert(i, n))
			ps.md.shift(fi, i, n)
		},
		"truncate": func(t *rapid.T) {
			fi, i, _ := ps.pick(t)
			wantNoErr(t, fmt.Sprintf("Truncate(%d)", i), ps.files[fi].Truncate(i))
			for _, p := range ps.md.pagesFrom(fi, i) {
				ps.md.drop(fi, p)
			}
		},
		"release": func(t *rapid.T) {
			fi := rapid.IntRange(0, len(ps.files)-1).Draw(t, "file")
			wantNoErr(t, "Release", ps.files[fi].Release())
			for _, p := range ps.md.pagesFrom(fi, 0) {
				ps.md.drop(fi, p)
			}
			ps.files[fi] = ps.fs.NewFile(0).(*extentfs.File)
		},
		"lookup": func(t *rapid.T) {
			fi, i, _ := ps.pick(t)
			max := rapid.Int64Range(1, 50).Draw(t, "max")
			e, err := ps.files[fi].Lookup(i, max)
			wantNoErr(t, "Lookup", err)
			if e.Page != i || e.Count <= 0 || e.Count > max {
				t.Fatalf("Lookup(%d, %d) = %+v: bad range", i, max, e)
			}
			for p := i; p < e.End(); p++ {
				k, b := ps.md.lookup(fi, p)
				wantB := int64(-1)
				if e.Kind != blockmap.Hole {
					wantB = e.Block + p - i
				}
				if k != e.Kind || b != wantB {
					t.Fatalf("Lookup(%d, %d) = %+v, but model page %d is %v block %d", i, max, e, p, k, b)
				}
			}
			// The extent must be maximal: the page after it, if inside
			// the window, cannot continue it.
			if p := e.End(); p < i+max {
				k, b := ps.md.lookup(fi, p)
				if k == e.Kind && (k == blockmap.Hole || b == e.Block+e.Count) {
					t.Fatalf("Lookup(%d, %d) = %+v stops early: page %d continues it", i, max, e, p)
				}
			}
		},
		"nextdata": func(t *rapid.T) {
			fi, i, _ := ps.pick(t)
			got, err := ps.files[fi].NextData(i)
			wantNoErr(t, "NextData", err)
			want := int64(-1)
			for _, p := range ps.md.pagesFrom(fi, i) {
				if ps.md.files[fi][p].written {
					want = p
					break
				}
			}
			if got != want {
				t.Fatalf("NextData(%d) = %d, model says %d", i, got, want)
			}
		},
		"": ps.check,
	}
}

// check compares every file page by page with the model and runs the
// filesystem's own invariant check; rapid calls it after every action.
func (ps *propState) check(t *rapid.T) {
	if err := ps.fs.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	var used int64
	for fi, f := range ps.files {
		got := map[int64]modelPage{}
		for _, e := range f.Extents() {
			for p := e.Page; p < e.End(); p++ {
				got[p] = modelPage{written: e.Kind == blockmap.Mapped, block: e.Block + p - e.Page}
			}
		}
		if !maps.Equal(got, ps.md.files[fi]) {
			t.Fatalf("file %d: extents %v\ndisagree with model %v", fi, f.Extents(), ps.md.files[fi])
		}
		if b := f.Blocks(); b != int64(len(got)) {
			t.Fatalf("file %d: Blocks = %d, extents hold %d", fi, b, len(got))
		}
		used += int64(len(got))
	}
	total, free := ps.fs.Statfs()
	if total != ps.total || free != total-used || free != ps.md.nfree {
		t.Fatalf("Statfs = %d, %d; used %d, model free %d", total, free, used, ps.md.nfree)
	}
}

func TestPropertyModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		total := rapid.Int64Range(64, 256).Draw(t, "blocks")
		nfiles := rapid.IntRange(2, 3).Draw(t, "files")
		ps := &propState{fs: extentfs.New(total), md: newModel(total, nfiles), total: total}
		for range nfiles {
			ps.files = append(ps.files, ps.fs.NewFile(0).(*extentfs.File))
		}
		t.Repeat(ps.actions())
	})
}
