package torture

import (
	"strings"
	"testing"
)

// Synthetic histories for the checker: each test drives the model the way
// workers do (begin/end around an operation, beginRead/endRead around a
// read) and feeds endRead the block a buggy or correct filesystem could
// have returned.

const testFile = 1

func newTestFile(strict bool) *fileModel {
	return newModel(strict).newFile(testFile, "f", 8)
}

func signed(file uint64, off int64, gen uint64) []byte {
	b := make([]byte, BlockSize)
	SignBlock(b, Sig{File: file, Off: off, Gen: gen})
	return b
}

func zeros() []byte { return make([]byte, BlockSize) }

// write records a completed write of block pos and returns its generation.
func write(fm *fileModel, pos int64) uint64 {
	o := fm.beginWrite("write", "test", pos, 1, false)
	fm.end(o, -1, fateVoid, "")
	return o.start
}

func punch(fm *fileModel, pos, n int64) *op {
	o := fm.beginRemove("punch", "test", "", pos, n)
	fm.end(o, -1, fateVoid, "")
	return o
}

// read checks that a read of block pos returning blk, running now, yields
// the violation kind want ("" for none).
func read(t *testing.T, fm *fileModel, pos int64, blk []byte, want string) {
	t.Helper()
	R := fm.beginRead()
	vs := fm.endRead(R, readDesc{name: "read", worker: "test"}, pos, blk, 1)
	switch {
	case want == "" && len(vs) > 0:
		t.Errorf("unexpected violation: %v", vs[0])
	case want != "" && len(vs) == 0:
		t.Errorf("no violation, want %s", want)
	case want != "" && vs[0].Kind != want:
		t.Errorf("violation %v, want kind %s", vs[0], want)
	}
}

func TestCheckerForeign(t *testing.T) {
	fm := newTestFile(false)
	read(t, fm, 0, signed(2, 0, 1), KindForeign)
	// Even where anything of the file is allowed (a move in flight).
	o := fm.beginCollapse("test", 0, 1)
	read(t, fm, 0, signed(testFile, 5, 1), "")
	read(t, fm, 0, signed(2, 0, 1), KindForeign)
	fm.end(o, -1, fateVoid, "")
	v := func() Violation {
		R := fm.beginRead()
		return fm.endRead(R, readDesc{name: "read", worker: "w"}, 3, signed(9, 3, 4), 1)[0]
	}()
	if !strings.Contains(v.String(), "file id 9") || v.Offset != 3*BlockSize || len(v.History) == 0 {
		t.Errorf("report lacks the details: %v", v)
	}
}

func TestCheckerCorrupt(t *testing.T) {
	fm := newTestFile(false)
	g := write(fm, 0)
	b := signed(testFile, 0, g)
	b[100] ^= 1
	read(t, fm, 0, b, KindCorrupt)
	// Torn: half of one write, half of another.
	g2 := write(fm, 0)
	torn := signed(testFile, 0, g)
	copy(torn[BlockSize/2:], signed(testFile, 0, g2)[BlockSize/2:])
	read(t, fm, 0, torn, KindCorrupt)
	// Partly zeroed.
	half := signed(testFile, 0, g2)
	clear(half[BlockSize/2:])
	read(t, fm, 0, half, KindCorrupt)
	read(t, fm, 0, signed(testFile, 0, g2), "")
}

func TestCheckerStale(t *testing.T) {
	fm := newTestFile(false)
	g := write(fm, 2)
	read(t, fm, 2, signed(testFile, 2, g), "")
	punch(fm, 0, 4)
	read(t, fm, 2, zeros(), "")
	read(t, fm, 2, signed(testFile, 2, g), KindStale) // older than a completed punch
	g2 := write(fm, 2)
	read(t, fm, 2, zeros(), KindLostWrite)
	read(t, fm, 2, signed(testFile, 2, g), KindStale)
	read(t, fm, 2, signed(testFile, 2, g2), "")
	// Truncate and zero range remove too.
	o := fm.beginRemove("truncate-down", "test", "", 1, 7)
	fm.end(o, -1, fateVoid, "")
	read(t, fm, 2, signed(testFile, 2, g2), KindStale)
}

func TestCheckerOverlap(t *testing.T) {
	fm := newTestFile(false)
	g := write(fm, 1)
	// A read that overlaps a punch may see either side of it.
	R := fm.beginRead()
	o := fm.beginRemove("punch", "test", "", 1, 1)
	for _, blk := range [][]byte{zeros(), signed(testFile, 1, g)} {
		if vs := fm.endRead(R, readDesc{}, 1, blk, 1); len(vs) > 0 {
			t.Errorf("overlapping read: %v", vs[0])
		}
		R = fm.beginRead()
		R-- // pretend it started before the punch
	}
	fm.end(o, -1, fateVoid, "")
	if vs := fm.endRead(R, readDesc{}, 1, signed(testFile, 1, g), 1); len(vs) > 0 {
		t.Errorf("read overlapping a punch that ended during it: %v", vs[0])
	}
	read(t, fm, 1, signed(testFile, 1, g), KindStale)

	// Two overlapping writes, both done before the read: either may be last.
	a := fm.beginWrite("write", "a", 4, 1, false)
	b := fm.beginWrite("write", "b", 4, 1, false)
	fm.end(a, -1, fateVoid, "")
	fm.end(b, -1, fateVoid, "")
	read(t, fm, 4, signed(testFile, 4, a.start), "")
	read(t, fm, 4, signed(testFile, 4, b.start), "")
	// A write that started after the read ended is a phantom.
	R = fm.beginRead()
	E := fm.m.clock.Load() + 1
	c := write(fm, 4)
	vs := fm.endRead(R, readDesc{}, 4, signed(testFile, 4, c+100), 1)
	if len(vs) != 1 || vs[0].Kind != KindPhantom {
		t.Errorf("future generation: %v (E %d)", vs, E)
	}
}

func TestCheckerFailedOps(t *testing.T) {
	fm := newTestFile(false)
	g := write(fm, 0)
	// A write that failed with nothing written is void.
	o := fm.beginWrite("mapwrite", "test", 0, 1, false)
	fm.end(o, 0, fateVoid, "EFAULT")
	read(t, fm, 0, signed(testFile, 0, o.start), KindLostWrite)
	read(t, fm, 0, signed(testFile, 0, g), "")
	// One that failed uncertainly may or may not have happened, and
	// supersedes nothing.
	u := fm.beginWrite("write", "test", 0, 2, false)
	fm.end(u, 1, fateUncertain, "EIO") // block 0 written, block 1 uncertain
	read(t, fm, 0, signed(testFile, 0, u.start), "")
	read(t, fm, 0, signed(testFile, 0, g), KindLostWrite)
	read(t, fm, 1, signed(testFile, 1, u.start), "")
	read(t, fm, 1, zeros(), "")
}

func TestCheckerDirectWrites(t *testing.T) {
	for _, strict := range []bool{false, true} {
		fm := newTestFile(strict)
		g := write(fm, 3)
		d := fm.beginWrite("direct-write", "test", 3, 1, true)
		fm.end(d, -1, fateVoid, "")
		read(t, fm, 3, signed(testFile, 3, d.start), "")
		want := ""
		if strict {
			want = KindLostWrite
		}
		read(t, fm, 3, signed(testFile, 3, g), want) // a cached page that survived the direct write
		// A buffered write supersedes both.
		g2 := write(fm, 3)
		read(t, fm, 3, signed(testFile, 3, d.start), KindLostWrite)
		read(t, fm, 3, signed(testFile, 3, g2), "")
	}
}

func TestCheckerMoves(t *testing.T) {
	fm := newTestFile(false)
	var gens [8]uint64
	for p := int64(0); p < 8; p++ {
		gens[p] = write(fm, p)
	}
	// Collapse 2 blocks at 2: block p >= 2 gets block p+2's data.
	o := fm.beginCollapse("test", 2, 2)
	read(t, fm, 2, signed(testFile, 7, gens[7]), "") // running: anything of the file
	fm.end(o, -1, fateVoid, "")
	read(t, fm, 2, signed(testFile, 4, gens[4]), "")
	read(t, fm, 5, signed(testFile, 7, gens[7]), "")
	read(t, fm, 6, zeros(), "")                                 // beyond the old end: the model's zeros
	read(t, fm, 2, signed(testFile, 2, gens[2]), KindStale)     // the collapsed-away data
	read(t, fm, 3, signed(testFile, 3, gens[3]), KindStale)     // not shifted
	read(t, fm, 2, signed(testFile, 6, gens[6]), KindMisplaced) // not the block that moved here
	read(t, fm, 1, signed(testFile, 3, gens[3]), KindMisplaced) // no move explains it
	// Insert 1 block at 1: a hole at 1, block p >= 2 gets block p-1's.
	o = fm.beginInsert("test", 1, 1)
	fm.end(o, -1, fateVoid, "")
	read(t, fm, 1, zeros(), "")
	read(t, fm, 2, signed(testFile, 1, gens[1]), "")
	read(t, fm, 3, signed(testFile, 4, gens[4]), "") // moved twice
	// A failed collapse (EINVAL) changed nothing.
	o = fm.beginCollapse("test", 0, 1)
	fm.end(o, 0, fateVoid, "EINVAL")
	read(t, fm, 0, signed(testFile, 0, gens[0]), "")
	read(t, fm, 0, zeros(), KindLostWrite)
	// Copy within the file: the destination gets the source's value.
	o = fm.beginCopy("test", 0, 6, 1)
	fm.end(o, -1, fateVoid, "")
	read(t, fm, 6, signed(testFile, 0, gens[0]), "")
	read(t, fm, 6, zeros(), KindLostWrite)
}

func TestCheckerPruning(t *testing.T) {
	fm := newTestFile(false)
	var last uint64
	for i := 0; i < 1000; i++ {
		last = write(fm, 0)
		if i%3 == 0 {
			punch(fm, 0, 1)
			last = write(fm, 0)
		}
	}
	if n := len(fm.blocks[0].hist); n > 4 {
		t.Errorf("history of %d entries after superseding writes", n)
	}
	read(t, fm, 0, signed(testFile, 0, last), "")
	// A long read pins what it may see; direct writes supersede nothing:
	// the history is summarized, never wrong.
	R := fm.beginRead()
	for i := 0; i < 3*maxHist; i++ {
		d := fm.beginWrite("direct-write", "test", 0, 1, true)
		fm.end(d, -1, fateVoid, "")
	}
	if n := len(fm.blocks[0].hist); n > maxHist+1 {
		t.Errorf("history of %d entries, want at most %d", n, maxHist+1)
	}
	if vs := fm.endRead(R, readDesc{}, 0, signed(testFile, 0, last), 1); len(vs) > 0 {
		t.Errorf("pinned read: %v", vs[0])
	}
	if fm.m.summaries.Load() == 0 {
		t.Error("no summary")
	}
}

func TestSignBlock(t *testing.T) {
	b := signed(7, 42, 99)
	s, st := ParseBlock(b)
	if st != BlockSigned || s != (Sig{7, 42, 99}) {
		t.Fatalf("ParseBlock = %v, %v", s, st)
	}
	if _, st := ParseBlock(zeros()); st != BlockZero {
		t.Errorf("zeros: %v", st)
	}
	if string(signed(7, 42, 99)) != string(b) {
		t.Error("signing is not deterministic")
	}
	other := signed(7, 42, 100)
	if string(other[hdrSize:]) == string(b[hdrSize:]) {
		t.Error("payload does not depend on the generation")
	}
	for _, i := range []int{0, 5, 9, 17, 25, 40, BlockSize - 1} {
		c := signed(7, 42, 99)
		c[i] ^= 0x80
		if _, st := ParseBlock(c); st != BlockCorrupt {
			t.Errorf("flipped byte %d: %v", i, st)
		}
	}
}

// TestCheckerTorn: on targets a block mixing two allowed values (a read
// racing a write) is allowed and counted; a mix with another value, or
// any mix without the target flag, is corrupt.
func TestCheckerTorn(t *testing.T) {
	for _, torn := range []bool{false, true} {
		fm := newTestFile(false)
		fm.m.torn = torn
		old := write(fm, 0)
		o := fm.beginWrite("write", "test", 0, 1, false) // running: both values allowed
		mix := signed(testFile, 0, old)
		copy(mix[BlockSize/2:], signed(testFile, 0, o.start)[BlockSize/2:])
		want := KindCorrupt
		if torn {
			want = ""
		}
		read(t, fm, 0, mix, want)
		zeroMix := signed(testFile, 0, old)
		clear(zeroMix[:100]) // zeros are not allowed: the block was written
		read(t, fm, 0, zeroMix, KindCorrupt)
		fm.end(o, -1, fateVoid, "")
		if got := fm.m.tornBlocks.Load(); got != map[bool]int64{false: 0, true: 1}[torn] {
			t.Errorf("torn %v: %d torn blocks counted", torn, got)
		}
	}
}
