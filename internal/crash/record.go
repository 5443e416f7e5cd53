package crash

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/meta"
)

// commitRec is one metadata state of a recorded run: meta.db's bytes
// after a commit, and before it (the previous state as it was on disk
// when the commit began), with the recorder marks around the metadata
// transaction: a crash between them may leave either.
type commitRec struct {
	snap                  snapshot
	before, after         []byte
	beforeMark, afterMark int // -1: none (the state mkfs made)
}

// ckptRec is one meta.db transaction of an image with a log (a
// checkpoint, or a commit too large for the log): meta.db before and
// after it, and the recorder marks around it.
type ckptRec struct {
	before, after         []byte
	beforeMark, afterMark int
}

// recording is a workload run on a recording device: everything needed
// to rebuild and check any crash state of it.
type recording struct {
	seed    uint64
	w       *workload
	log     []blockdev.Entry
	nblocks int64
	base    map[int64][]byte // non-zero blocks of the data file before the run
	commits []commitRec      // commits[0] is the state mkfs made
	runtime []string         // problems seen while recording
	// The image has a write-ahead log: a commit is its log record, found
	// (or not) on the crash state's data device, and meta.db changes at
	// checkpoints only (ckpts).
	wal   bool
	ckpts []ckptRec
	seq0  uint64 // the commit sequence mkfs left: commits[k] is commit seq0+k
}

// logBytes is the write-ahead log of recorded images: 16 blocks, halves
// of 8, so that workloads fill halves, checkpoint and reuse them.
const logBytes = 16 * BlockSize

// cacheBytes is the page cache of recorded runs and crash mounts: small
// (64 pages), so that writers and the flusher write back while the
// workload runs, not only fsync.
const cacheBytes = 256 << 10

// record makes a fresh image of nblocks blocks in dir, runs workload c on
// it through a blockdev.Recorder with commit hooks that copy meta.db, and
// returns the recording.
func record(dir string, c spec, nblocks int64) (*recording, error) {
	seed := c.seed
	if err := holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: nblocks * BlockSize, DataChecksums: c.checksums, Force: true, Backend: c.backend(),
		LogBytes: logBytes}); err != nil {
		return nil, err
	}
	img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	walBlocks, seq0 := img.WALBlocks(), img.Seq()
	img.Close()
	metaPath := filepath.Join(dir, meta.MetaFile)
	meta0, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, err
	}
	base, err := nonZeroBlocks(filepath.Join(dir, meta.DataFile))
	if err != nil {
		return nil, err
	}
	r := &recording{seed: seed, nblocks: nblocks + walBlocks, base: base, wal: walBlocks > 0, seq0: seq0,
		commits: []commitRec{{after: meta0, beforeMark: -1, afterMark: -1,
			snap: snapshot{op: 0, before: nsState{names: map[string]uint64{}, sizes: map[uint64]int64{}}}}}}
	r.commits[0].snap.after = r.commits[0].snap.before
	var rec *blockdev.Recorder
	w := newWorkload(seed, nil, budget(nblocks, c.checksums || c.ext2), func(label string) int { return rec.Mark(label) })
	w.noFallocate = c.ext2
	w.expectErr = c.expect
	readMeta := func() []byte {
		b, err := os.ReadFile(metaPath)
		if err != nil {
			r.runtime = append(r.runtime, fmt.Sprintf("copy meta.db at a commit: %v", err))
		}
		return b
	}
	hooks := &holefs.Hooks{
		BeforeCommit: func() {
			c := commitRec{snap: w.snapshot(), before: readMeta(), afterMark: -1}
			if prev := r.commits[len(r.commits)-1].after; bytes.Equal(c.before, prev) {
				c.before = prev // share the copy
			}
			c.beforeMark = rec.Mark(fmt.Sprintf("commit %d: before", len(r.commits)))
			r.commits = append(r.commits, c)
		},
		AfterCommit: func() {
			c := &r.commits[len(r.commits)-1]
			c.after = readMeta()
			c.afterMark = rec.Mark(fmt.Sprintf("commit %d: after", len(r.commits)-1))
		},
		BeforeCheckpoint: func() {
			c := ckptRec{before: readMeta(), afterMark: -1}
			c.beforeMark = rec.Mark(fmt.Sprintf("checkpoint %d: before", len(r.ckpts)+1))
			r.ckpts = append(r.ckpts, c)
		},
		AfterCheckpoint: func() {
			c := &r.ckpts[len(r.ckpts)-1]
			c.after = readMeta()
			c.afterMark = rec.Mark(fmt.Sprintf("checkpoint %d: after", len(r.ckpts)))
		},
	}
	fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1, CacheBytes: cacheBytes, Hooks: hooks,
		WrapDevice: func(d blockdev.Device) blockdev.Device {
			rec = blockdev.NewRecorder(d)
			if c.wrap != nil {
				return c.wrap(rec)
			}
			return rec
		}})
	if err != nil {
		return nil, err
	}
	w.fsys = fsys
	w.run(c.ops, c.script)
	r.w = w
	r.log = rec.Log()
	r.runtime = append(r.runtime, w.runtime...)
	return r, nil
}

// nonZeroBlocks reads the blocks of a data file that are not all zeros.
func nonZeroBlocks(path string) (map[int64][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blocks := map[int64][]byte{}
	zero := make([]byte, BlockSize)
	for i := 0; i+BlockSize <= len(b); i += BlockSize {
		if blk := b[i : i+BlockSize]; !bytes.Equal(blk, zero) {
			blocks[int64(i/BlockSize)] = blk
		}
	}
	return blocks, nil
}
