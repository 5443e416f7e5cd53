package crash

import (
	"testing"

	"github.com/holefs/holefs/internal/torture"
)

// TestJudge checks the crash checker's rules on one block's history.
func TestJudge(t *testing.T) {
	block := func(id uint64, off int64, gen int) []byte {
		b := make([]byte, BlockSize)
		if gen != 0 {
			torture.SignBlock(b, torture.Sig{File: id, Off: off, Gen: uint64(gen)})
		}
		return b
	}
	corrupt := block(1, 0, 3)
	corrupt[100] ^= 1
	w := func(op, synced int) *event { return &event{op: op, kind: evWrite, synced: synced} }
	d := func(op, synced int) *event { return &event{op: op, kind: evDirect, synced: synced} }
	rm := func(op int) *event { return &event{op: op, kind: evRemove} }
	tests := []struct {
		name     string
		hist     []*event
		commitOp int // the op during which the state's commit ran
		ended    int // ops up to this one had returned at the crash
		data     []byte
		want     verdict
	}{
		{"never written: zeros", nil, 10, 10, block(1, 0, 0), blockOK},
		{"never written: another file's block", nil, 10, 10, block(2, 0, 5), blockForeign},
		{"never written: this file's other block", nil, 10, 10, block(1, 1, 5), blockForeign},
		{"garbage", nil, 10, 10, corrupt, blockCorrupt},
		{"write not synced: zeros (unwritten)", []*event{w(3, 0)}, 10, 10, block(1, 0, 0), blockOK},
		{"write not synced: its data", []*event{w(3, 0)}, 10, 10, block(1, 0, 3), blockOK},
		{"fsync returned: zeros lost", []*event{w(3, 5)}, 4, 5, block(1, 0, 0), blockLost},
		{"fsync returned, commit older: still durable", []*event{w(3, 5)}, 2, 5, block(1, 0, 0), blockLost},
		{"fsync running, its commit in the state", []*event{w(3, 5)}, 5, 4, block(1, 0, 0), blockLost},
		{"fsync running, its commit not in the state", []*event{w(3, 5)}, 4, 4, block(1, 0, 0), blockOK},
		{"overwrite of durable data, not synced", []*event{w(3, 5), w(7, 0)}, 8, 8, block(1, 0, 3), blockOK},
		{"overwrite of durable data, not synced, new data", []*event{w(3, 5), w(7, 0)}, 8, 8, block(1, 0, 7), blockOK},
		{"overwrite of durable data, not synced, zeros", []*event{w(3, 5), w(7, 0)}, 8, 8, block(1, 0, 0), blockLost},
		{"overwrite synced: old data lost", []*event{w(3, 5), w(7, 9)}, 10, 10, block(1, 0, 3), blockLost},
		{"direct write before the commit: durable", []*event{d(3, 0)}, 4, 4, block(1, 0, 0), blockLost},
		{"direct write after the commit: maybe", []*event{d(3, 0)}, 3, 4, block(1, 0, 0), blockOK},
		{"punch committed: zeros", []*event{w(3, 5), rm(6)}, 7, 7, block(1, 0, 0), blockOK},
		{"punch committed: old data is stale", []*event{w(3, 5), rm(6)}, 7, 7, block(1, 0, 3), blockStale},
		{"punch not committed: old data", []*event{w(3, 5), rm(6)}, 6, 7, block(1, 0, 3), blockOK},
		{"punch not committed: zeros lost", []*event{w(3, 5), rm(6)}, 5, 7, block(1, 0, 0), blockLost},
		{"punch in flight at the commit: zeros", []*event{w(3, 5), rm(6)}, 6, 7, block(1, 0, 0), blockOK},
		{"punch in flight at the commit: old data", []*event{w(3, 5), rm(6)}, 6, 7, block(1, 0, 3), blockOK},
		{"punch committed, then rewritten", []*event{w(3, 5), rm(6), w(8, 0)}, 9, 9, block(1, 0, 8), blockOK},
		{"punch committed, rewritten, old data stale", []*event{w(3, 5), rm(6), w(8, 0)}, 9, 9, block(1, 0, 3), blockStale},
		{"generation never written here", []*event{w(3, 5)}, 7, 7, block(1, 0, 4), blockUnknown},
		{"write after the crash", []*event{w(3, 5), w(200, 0)}, 9, 9, block(1, 0, 200), blockUnknown},
		{"failed write: old data", []*event{w(3, 5), {op: 7, kind: evDirect, failed: true}}, 9, 9, block(1, 0, 3), blockOK},
		{"failed write: its data", []*event{w(3, 5), {op: 7, kind: evDirect, failed: true}}, 9, 9, block(1, 0, 7), blockOK},
	}
	for _, tc := range tests {
		f := &fileModel{id: 1, hist: map[int64][]*event{0: tc.hist}}
		got, why := f.judge(0, tc.data, tc.commitOp, 100, func(op int) bool { return op <= tc.ended })
		if got != tc.want {
			t.Errorf("%s: %v (%s), want %v", tc.name, got, why, tc.want)
		}
	}
}
