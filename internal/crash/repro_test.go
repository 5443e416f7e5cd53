package crash

import (
	"context"
	"path/filepath"
	"testing"
)

// checkScript records script on a fresh image of nblocks blocks (with data
// checksums if sums), checks every crash state of it and returns the
// recording and the violations. expect accepts op errors (nil: none).
func checkScript(t *testing.T, nblocks int64, sums bool, script []op, expect func(error) bool) (*recording, []Violation) {
	t.Helper()
	dir := scratch(t)
	r, err := record(filepath.Join(dir, "img"), spec{seed: 1, script: script, expect: expect, checksums: sums}, nblocks)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.runtime {
		t.Errorf("while recording: %s", p)
	}
	var vs []Violation
	if err := r.checkAll(context.Background(), dir, 1, 6, func(v []Violation) { vs = append(vs, v...) }); err != nil {
		t.Fatal(err)
	}
	return r, vs
}

// TestCrashScripts runs scripted workloads that reach one dangerous case
// each for sure, and checks every crash state of them.
func TestCrashScripts(t *testing.T) {
	tests := []struct {
		name    string
		nblocks int64
		sums    bool // data checksums
		script  []op
		// commitIn, if set, is an op (numbered from 1 with the
		// workload's initial mkdir) that must have made a commit.
		commitIn int
	}{{
		// Overwriting written blocks changes no metadata. If another
		// fsync commits the file's new mtime first, its own fsync finds
		// nothing to commit, and once skipped the device flush: the
		// new data was not durable when fsync (and even Close)
		// returned.
		name: "fsync of an overwrite with nothing left to commit",
		script: []op{
			{kind: opCreate, id: 1, path: "a0"},
			{kind: opWrite, id: 1, n: 2},
			{kind: opFsync, id: 1},
			{kind: opCreate, id: 2, path: "a1"},
			{kind: opWrite, id: 1, n: 1},
			{kind: opFsync, id: 2},
			{kind: opFsync, id: 1},
		},
	}, {
		// The blocks of a file unlinked and closed wait in quarantine;
		// a write that needs them forces a commit in the middle of
		// the write (holding page locks), then reuses them.
		name:    "allocation that forces a commit to release the quarantine",
		nblocks: 24,
		script: []op{
			{kind: opCreate, id: 1, path: "a0"},
			{kind: opWrite, id: 1, n: 12},
			{kind: opFsync, id: 1},
			{kind: opCreate, id: 2, path: "a1"},
			{kind: opWrite, id: 2, n: 4},
			{kind: opFsync, id: 2},
			{kind: opUnlink, path: "a0"},
			{kind: opClose, id: 1},
			{kind: opWrite, id: 2, off: 4, n: 12},
			{kind: opFsync, id: 2},
		},
		commitIn: 10,
	}, {
		// A punched file's blocks go to another file after the punch
		// commits; before, the other file must get other blocks.
		name: "punch, then another file allocates with O_DIRECT",
		script: []op{
			{kind: opCreate, id: 1, path: "a0"},
			{kind: opWrite, id: 1, n: 6},
			{kind: opFsync, id: 1},
			{kind: opPunch, id: 1, off: 1, n: 4, keep: true},
			{kind: opCreate, id: 2, path: "a1"},
			{kind: opDirect, id: 2, n: 4},
			{kind: opFsync, id: 2},
			{kind: opDirect, id: 2, off: 4, n: 4},
			{kind: opFsync, id: 2},
		},
	}, {
		// Unwritten blocks past EOF, exposed by truncating up and by a
		// write beyond them, must read as zeros, also after they were
		// another file's.
		name: "fallocate KEEP_SIZE past EOF, then extend over it",
		script: []op{
			{kind: opCreate, id: 1, path: "a0"},
			{kind: opWrite, id: 1, n: 4},
			{kind: opFsync, id: 1},
			{kind: opUnlink, path: "a0"},
			{kind: opClose, id: 1},
			{kind: opSync},
			{kind: opCreate, id: 2, path: "a1"},
			{kind: opWrite, id: 2, n: 1},
			{kind: opFalloc, id: 2, off: 1, n: 4, keep: true},
			{kind: opFsync, id: 2},
			{kind: opTruncate, id: 2, n: 3},
			{kind: opWrite, id: 2, off: 4, n: 1},
			{kind: opFsync, id: 2},
		},
	}, {
		// With data checksums every block is written out of place, so
		// that a crash never pairs a block with another data's
		// checksum. Zero range made written blocks unwritten in place,
		// and the write after it went into them in place: before the
		// next commit, a crash left the fsynced map and checksums over
		// the new data, and reads failed with EIO.
		name: "zero range, then rewrite, with data checksums",
		sums: true,
		script: []op{
			{kind: opCreate, id: 1, path: "a0"},
			{kind: opWrite, id: 1, n: 3},
			{kind: opFsync, id: 1},
			{kind: opZero, id: 1, off: 1, n: 2},
			{kind: opWrite, id: 1, off: 1, n: 2},
			{kind: opFsync, id: 1},
		},
	}, {
		// Rename over an open file: its blocks live until it is
		// closed; the rename is atomic in every crash state.
		name: "rename over an open file, then close it",
		script: []op{
			{kind: opCreate, id: 1, path: "a0"},
			{kind: opWrite, id: 1, n: 3},
			{kind: opCreate, id: 2, path: "d/b0"},
			{kind: opWrite, id: 2, n: 3},
			{kind: opSync},
			{kind: opRename, path: "d/b0", to: "a0"},
			{kind: opWrite, id: 1, off: 3, n: 1},
			{kind: opFsyncDir, path: "."},
			{kind: opClose, id: 1},
			{kind: opCreate, id: 3, path: "a1"},
			{kind: opDirect, id: 3, n: 4},
			{kind: opFsync, id: 3},
		},
	}, {
		// A FIFO is an inode with no data: it appears, is replaced by a
		// file renamed over it and goes, atomically in every state.
		name: "FIFOs made, renamed over and removed",
		script: []op{
			{kind: opMknod, path: "a0"},
			{kind: opMknod, path: "d/b0"},
			{kind: opFsyncDir, path: "."},
			{kind: opCreate, id: 1, path: "a1"},
			{kind: opWrite, id: 1, n: 2},
			{kind: opFsync, id: 1},
			{kind: opRename, path: "a1", to: "a0"},
			{kind: opUnlink, path: "d/b0"},
			{kind: opMknod, path: "d/b1"},
			{kind: opSync},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nblocks := tc.nblocks
			if nblocks == 0 {
				nblocks = 64
			}
			r, vs := checkScript(t, nblocks, tc.sums, tc.script, nil)
			for _, v := range vs {
				t.Error(v)
			}
			if tc.commitIn == 0 {
				return
			}
			for _, c := range r.commits[1:] {
				if c.snap.op == tc.commitIn {
					return
				}
			}
			t.Errorf("no commit during op %d (%v): the scenario did not happen", tc.commitIn, r.w.ops[tc.commitIn].op)
		})
	}
}
