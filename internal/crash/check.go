package crash

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/vfs"
)

// Violation is one thing wrong with one crash state.
type Violation struct {
	Kind   string // OPEN, FSCK, NAMESPACE, SIZE, FOREIGN, STALE, LOST, CORRUPT, UNKNOWN, CLOSE, RUNTIME, ...
	Where  string // the crash state: seed, log position, op, metadata state, unflushed writes kept
	Detail string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s\n    at %s", v.Kind, v.Detail, v.Where)
}

// build writes crash state s of r into dir as an image: the data file
// replayed from the log and the meta.db of s.
func (r *recording) build(dir string, s crashState) error {
	dataPath := filepath.Join(dir, meta.DataFile)
	if err := os.Remove(dataPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dev, err := blockdev.OpenFile(dataPath, r.nblocks)
	if err != nil {
		return err
	}
	for _, b := range slices.Sorted(maps.Keys(r.base)) {
		if err := dev.WriteBlocks(r.base[b], b); err != nil {
			dev.Close()
			return err
		}
	}
	if err := blockdev.Replay(dev, r.log, s.n, func(i int) bool { return s.sub.keep[i] }); err != nil {
		dev.Close()
		return err
	}
	if err := dev.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, meta.MetaFile), s.meta.db, 0o600)
}

// check rebuilds crash state s in dir, mounts it and checks it.
func (r *recording) check(dir string, s crashState) []Violation {
	var vs []Violation
	bad := func(kind, format string, a ...any) {
		vs = append(vs, Violation{Kind: kind, Where: r.describe(s), Detail: fmt.Sprintf(format, a...)})
	}
	if err := r.build(dir, s); err != nil {
		bad("HARNESS", "rebuild the image: %v", err)
		return vs
	}
	probs, err := fsck(dir, false)
	if err != nil {
		bad("FSCK", "before mounting: %v", err)
	}
	for _, p := range probs {
		bad("FSCK", "before mounting: %s", p)
	}
	snap := s.meta.snap
	if r.wal {
		var ok bool
		if snap, ok = r.walSnapshot(dir, s.n, bad); !ok {
			return vs
		}
	}
	fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1, CacheBytes: cacheBytes})
	if err != nil {
		bad("OPEN", "the crash image does not open: %v", err)
		return vs
	}
	got, err := walk(fsys, r.w.byIno)
	if err != nil {
		bad("READ", "%v", err)
	} else {
		ended := func(op int) bool { e := r.w.ops[op].end; return e >= 0 && e < s.n }
		compare(r.w, snap, r.lastOp(s.n), ended, got, bad)
	}
	if err := fsys.Close(); err != nil {
		bad("CLOSE", "%v", err)
	}
	probs, err = fsck(dir, true)
	if err != nil {
		bad("FSCK", "after recovery: %v", err)
	}
	for _, p := range probs {
		bad("FSCK", "after recovery: %s", p)
	}
	return vs
}

// walSnapshot returns the model's view of the commit a crash image with
// a log holds: the last its log replays (read as fsck does, without
// writing), which must lie between the last commit whose flush returned
// before the crash and the last whose record was written.
func (r *recording) walSnapshot(dir string, n int, bad func(kind, format string, a ...any)) (*snapshot, bool) {
	img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: true})
	if err != nil {
		bad("OPEN", "the crash image does not open read-only: %v", err)
		return nil, false
	}
	seq := img.Seq()
	img.Close()
	lo, hi := r.walCommits(n)
	k := int(seq - r.seq0)
	switch {
	case seq < r.seq0 || k < lo:
		bad("LOST", "the image holds commit %d; commit %d was durable (its flush had returned)", seq, r.seq0+uint64(lo))
		return nil, false
	case k > hi:
		bad("UNKNOWN", "the image holds commit %d; the last commit written was %d", seq, r.seq0+uint64(hi))
		return nil, false
	}
	return &r.commits[k].snap, true
}

// tree is what a mounted image holds: every path with its file id (0 for
// a directory), size and content.
type tree struct {
	names map[string]uint64
	size  map[string]int64
	data  map[string][]byte
}

// walk reads the whole namespace and every file of fsys; byIno names the
// workload's files by inode number.
func walk(fsys *holefs.FS, byIno map[uint64]uint64) (tree, error) {
	t := tree{names: map[string]uint64{}, size: map[string]int64{}, data: map[string][]byte{}}
	var visit func(dir string) error
	visit = func(dir string) error {
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			if e.IsDir() {
				t.names[p] = 0
				if err := visit(p); err != nil {
					return err
				}
				continue
			}
			if e.Type() == fs.ModeNamedPipe {
				t.names[p] = specialFile
				continue
			}
			st, err := fsys.Lstat(p)
			if err != nil {
				return err
			}
			id, ok := byIno[st.Sys().(*vfs.Attr).Ino]
			if !ok {
				id = unknownFile
			}
			t.names[p], t.size[p] = id, st.Size()
			if t.data[p], err = fsys.ReadFile(p); err != nil {
				return err
			}
		}
		return nil
	}
	return t, visit(".")
}

// compare checks what an image holds against the model of workload w:
// the namespace and the sizes are exactly those of the commit snap whose
// meta.db the image has (or, for a commit made during an op, of either
// side of it: rename is atomic), and every block of every file passes
// judge, given the last op started when the image was cut and which had
// returned (ended).
func compare(w *workload, snap *snapshot, lastOp int, ended func(op int) bool, got tree, bad func(kind, format string, a ...any)) {
	if !maps.Equal(got.names, snap.before.names) && !maps.Equal(got.names, snap.after.names) {
		bad("NAMESPACE", "%s", snap.after.diff(got.names))
	}
	for _, p := range slices.Sorted(maps.Keys(got.data)) {
		id := got.names[p]
		f := w.files[id]
		if f == nil {
			continue // reported as a namespace difference
		}
		size := got.size[p]
		if !snap.sizeOK(id, size) {
			bad("SIZE", "%s (file #%d): size %d, want %s", p, id, size, sizeRange(snap, id))
		}
		data := got.data[p]
		if len(data)%BlockSize != 0 {
			bad("SIZE", "%s (file #%d): %d bytes read, not whole blocks", p, id, len(data))
			continue
		}
		for off := range int64(len(data) / BlockSize) {
			if v, why := f.judge(off, data[off*BlockSize:(off+1)*BlockSize], snap.op, lastOp, ended); v != blockOK {
				bad(v.String(), "%s (file #%d) block %d: %s", p, id, off, why)
			}
		}
	}
}

func sizeRange(s *snapshot, id uint64) string {
	a, b := s.before.sizes[id], s.after.sizes[id]
	if a == b {
		return fmt.Sprint(a)
	}
	return fmt.Sprintf("%d to %d", min(a, b), max(a, b))
}

// kinds summarizes violations by kind, most frequent first.
func kinds(counts map[string]int) string {
	ks := slices.Collect(maps.Keys(counts))
	slices.SortFunc(ks, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}
