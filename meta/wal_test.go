package meta

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// walTestBlocks is the log of the test images: 8 blocks, halves of 4, so
// that a few commits fill a half and checkpoints and reuse happen.
const walTestBlocks = 8

// newWALImage creates an empty image with a log of walBlocks blocks.
func newWALImage(t testing.TB, walBlocks int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	if _, err := Create(dir, CreateOptions{Blocks: testBlocks, Incompat: IncompatWAL, WALBlocks: walBlocks}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return dir
}

// walRig is an open image with a journal writing its data file directly,
// counting flushes; gate, if set, runs inside each flush.
type walRig struct {
	img     *Image
	j       *Journal
	f       *os.File
	flushes atomic.Int64
	ckpts   atomic.Int64
	gate    func()
}

func openWALRig(t testing.TB, dir string) *walRig { return openWALRigEvery(t, dir, -1) }

// openWALRigEvery opens the rig with a commit interval: positive starts
// background checkpoints.
func openWALRigEvery(t testing.TB, dir string, interval time.Duration) *walRig {
	t.Helper()
	img, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	f, err := os.OpenFile(img.DataPath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &walRig{img: img, f: f}
	r.j = img.Journal(JournalOptions{Interval: interval,
		Flush: func() error {
			r.flushes.Add(1)
			if r.gate != nil {
				r.gate()
			}
			return f.Sync()
		},
		WriteBlock0:      func(p []byte) error { _, err := f.WriteAt(p, 0); return err },
		WriteLog:         func(p []byte, block int64) error { _, err := f.WriteAt(p, block*BlockSize); return err },
		BeforeCheckpoint: func() { r.ckpts.Add(1) }})
	r.j.Start(nil)
	t.Cleanup(func() { r.close(t) })
	return r
}

func (r *walRig) close(t testing.TB) {
	if r.img.db == nil {
		return
	}
	if err := r.j.Close(); err != nil {
		t.Errorf("Journal.Close: %v", err)
	}
	r.f.Close()
	if err := r.img.Close(); err != nil {
		t.Errorf("Image.Close: %v", err)
	}
}

// fileSrc is a file the tests commit: its size and extents.
type fileSrc struct {
	mu   sync.Mutex
	dyn  Dynamic
	exts []Extent
}

func (s *fileSrc) Snapshot() (Dynamic, []Extent, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dyn, slices.Clone(s.exts), true, true
}

// create logs a new regular file /name of inode ino mapping block blk
// (one written page), and returns its source.
func (r *walRig) create(ino uint64, name string, blk int64) *fileSrc {
	src := &fileSrc{dyn: Dynamic{Size: BlockSize}, exts: []Extent{{Page: 0, Count: 1, Block: blk}}}
	r.j.PutInode(Static{Ino: ino, Mode: syscall.S_IFREG | 0o644, Nlink: 1})
	r.j.PutDirent(RootIno, name, ino)
	e := r.j.Entry(ino)
	e.SetSource(src)
	e.Dirty()
	return src
}

// commitFiles creates /f1 to /fn, inodes 11 on mapping blocks 11 on, a
// commit each: n records in the log.
func (r *walRig) commitFiles(t testing.TB, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		r.create(uint64(10+i), fmt.Sprintf("f%d", i), int64(10+i))
		if err := r.j.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// crashCopy copies the image's files as they are now (every write kept,
// as after a crash whose flushes all completed) to a new directory.
func crashCopy(t testing.TB, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "crash")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{DataFile, MetaFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// names returns the root directory's entries of an image.
func names(t testing.TB, dir string, opts OpenOptions) ([]string, uint64, error) {
	t.Helper()
	img, err := Open(dir, opts)
	if err != nil {
		return nil, 0, err
	}
	defer img.Close()
	snap, err := img.Load(nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var ns []string
	for _, d := range snap.Dirents {
		if d.Dir == RootIno {
			ns = append(ns, d.Name)
		}
	}
	return ns, snap.Seq, nil
}

// logBlock returns the data file offset of log block b of an image.
func logOffset(b int64) int64 { return (testBlocks + b) * BlockSize }

// TestWALReplay commits files one per commit, never checkpointing (the
// log holds them all), copies the image as a crash would leave it, damages
// the copy's log, and checks what Open replays.
func TestWALReplay(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage garbles the copy's data file; blocks are the log
		// blocks of records 1..3 of the run (commits 2..4).
		damage   func(t *testing.T, f *os.File)
		want     []string // files after Open
		rollback bool     // Open fails with a RollbackError, AcceptRollback gives want
	}{
		{"intact", nil, []string{"f1", "f2", "f3"}, false},
		{"torn last record", func(t *testing.T, f *os.File) { garble(t, f, logOffset(2)+40) }, []string{"f1", "f2"}, false},
		{"last record never written", func(t *testing.T, f *os.File) { zero(t, f, logOffset(2)) }, []string{"f1", "f2"}, false},
		{"damaged middle record", func(t *testing.T, f *os.File) { garble(t, f, logOffset(1)+40) }, []string{"f1"}, true},
		{"damaged header", func(t *testing.T, f *os.File) { garble(t, f, logOffset(0)+3) }, nil, true},
		{"record of another image", func(t *testing.T, f *os.File) {
			other, _ := NewSuperblock(testBlocks, IncompatWAL, 1)
			rec := encodeWAL(other.UUID, walRecord{seq: 4})
			if _, err := f.WriteAt(rec, logOffset(2)); err != nil {
				t.Fatal(err)
			}
		}, []string{"f1", "f2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newWALImage(t, 64)
			r := openWALRig(t, dir)
			r.commitFiles(t, 3)
			if n := r.ckpts.Load(); n != 0 {
				t.Fatalf("%d checkpoints; the test needs the log to hold every commit", n)
			}
			c := crashCopy(t, dir)
			if tc.damage != nil {
				f, err := os.OpenFile(filepath.Join(c, DataFile), os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				tc.damage(t, f)
				f.Close()
			}
			got, _, err := names(t, c, OpenOptions{})
			var rb *RollbackError
			switch {
			case tc.rollback && (!errors.As(err, &rb) || !errors.Is(err, syscall.EUCLEAN)):
				t.Fatalf("Open: %v; want a RollbackError", err)
			case tc.rollback:
				if !bytes.Contains([]byte(err.Error()), []byte("log block")) {
					t.Errorf("Open: %v; want it to name the damaged log block", err)
				}
				got, _, err = names(t, c, OpenOptions{AcceptRollback: true})
				if err != nil {
					t.Fatalf("Open with AcceptRollback: %v", err)
				}
				// Accepting cleared the log: the next open is clean.
				again, _, err := names(t, c, OpenOptions{})
				if err != nil || !slices.Equal(again, got) {
					t.Errorf("reopen after accepting: %v, %v; want %v", again, err, got)
				}
			case err != nil:
				t.Fatalf("Open: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("files %v; want %v", got, tc.want)
			}
		})
	}
}

func garble(t *testing.T, f *os.File, off int64) {
	t.Helper()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func zero(t *testing.T, f *os.File, off int64) {
	t.Helper()
	if _, err := f.WriteAt(make([]byte, BlockSize), off); err != nil {
		t.Fatal(err)
	}
}

// TestWALReplayIdempotent: replaying twice, or opening read-only (which
// replays into a copy) before and after, gives the same state, and the
// read-only open leaves meta.db as it was.
func TestWALReplayIdempotent(t *testing.T) {
	dir := newWALImage(t, 64)
	r := openWALRig(t, dir)
	r.commitFiles(t, 3)
	c := crashCopy(t, dir)
	before, err := os.ReadFile(filepath.Join(c, MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	ro, roSeq, err := names(t, c, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(c, MetaFile)); !bytes.Equal(after, before) {
		t.Errorf("a read-only open changed meta.db")
	}
	want := []string{"f1", "f2", "f3"}
	for i := range 2 {
		got, seq, err := names(t, c, OpenOptions{})
		if err != nil || !slices.Equal(got, want) || seq != roSeq {
			t.Errorf("open %d: %v at commit %d, %v; want %v at commit %d", i, got, seq, err, want, roSeq)
		}
	}
	if !slices.Equal(ro, want) {
		t.Errorf("read-only: %v; want %v", ro, want)
	}
	// A crash inside the replay's transaction leaves meta.db as before
	// it (bbolt's commit is atomic): the same replay runs again.
	if err := os.WriteFile(filepath.Join(c, MetaFile), before, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, seq, err := names(t, c, OpenOptions{}); err != nil || !slices.Equal(got, want) || seq != roSeq {
		t.Errorf("after a crash in the replay: %v at commit %d, %v; want %v at %d", got, seq, err, want, roSeq)
	}
}

// TestWALCheckpointReusesLog commits more records than the log holds:
// checkpoints must run, the halves be reused, and a crash after every
// commit still recover exactly the files committed so far.
func TestWALCheckpointReusesLog(t *testing.T) {
	dir := newWALImage(t, walTestBlocks)
	r := openWALRig(t, dir)
	var want []string
	for i := 1; i <= 20; i++ {
		name := fmt.Sprintf("f%02d", i)
		r.create(uint64(10+i), name, int64(10+i))
		if err := r.j.Commit(); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
		got, _, err := names(t, crashCopy(t, dir), OpenOptions{})
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("crash after commit of %s: %v, %v; want %v", name, got, err, want)
		}
	}
	// A half holds 4 records; each checkpoint frees both halves, the
	// first needed at record 9, the next at 17.
	if n := r.ckpts.Load(); n < 2 {
		t.Errorf("%d checkpoints for 20 records in halves of %d blocks; want at least 2", n, walTestBlocks/2)
	}
	r.close(t)
	// A clean close checkpoints: nothing is left to replay.
	img, err := Open(dir, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if first, last := img.Replayed(); last != 0 {
		t.Errorf("after Close the log still held commits %d..%d", first, last)
	}
}

// TestWALFlushes: a commit that maps a block anew flushes before its
// record and after (ordered data); one that only rewrites what is mapped
// (an overwrite in place) flushes once.
func TestWALFlushes(t *testing.T) {
	dir := newWALImage(t, 64)
	r := openWALRig(t, dir)
	src := r.create(11, "f", 11)
	for _, tc := range []struct {
		name   string
		change func()
		want   int64
	}{
		{"create", func() {}, 2},
		{"overwrite in place", func() { src.dyn.Mtime++ }, 1},
		{"append a block", func() {
			src.dyn.Size += BlockSize
			src.exts = append(src.exts, Extent{Page: 1, Count: 1, Block: 12})
		}, 2},
		{"write into an unwritten extent", func() {
			src.exts = append(src.exts, Extent{Page: 2, Count: 1, Block: 13, Unwritten: true})
		}, 1},
		{"convert it to written", func() { src.exts[2].Unwritten = false; src.dyn.Size += 2 * BlockSize }, 2},
		{"punch", func() { src.exts = src.exts[:1] }, 1},
		{"remap a page elsewhere (copy on write)", func() { src.exts[0].Block = 20 }, 2},
	} {
		src.mu.Lock()
		tc.change()
		src.mu.Unlock()
		r.j.Entry(11).Dirty()
		n := r.flushes.Load()
		if err := r.j.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := r.flushes.Load() - n; got != tc.want {
			t.Errorf("%s: %d flushes; want %d", tc.name, got, tc.want)
		}
	}
}

// TestGroupCommit: while a commit is in flight, n callers whose changes
// it did not take queue up; one commit then takes all of theirs, and the
// others return when it is durable, without a commit or flush of their
// own. Without group commit each would commit (and flush) in turn.
func TestGroupCommit(t *testing.T) {
	for _, n := range []int{2, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := newWALImage(t, 64)
			r := openWALRig(t, dir)
			// Make the first file known (its first commit is ordered).
			r.create(10, "first", 10)
			if err := r.j.Commit(); err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			var gated atomic.Bool
			entered := make(chan struct{})
			r.gate = func() {
				if gated.CompareAndSwap(false, true) {
					close(entered)
					<-release
				}
			}
			r.j.Entry(10).Dirty()
			commits0, flushes0 := r.j.Commits(), r.flushes.Load()
			errs := make(chan error, n+1)
			go func() { errs <- r.j.Commit() }()
			<-entered
			for i := range n {
				go func() {
					r.create(uint64(20+i), fmt.Sprintf("g%d", i), int64(20+i))
					errs <- r.j.Commit()
				}()
			}
			for r.j.commitMu.Waiters() < n {
				runtime.Gosched()
			}
			close(release)
			for range n + 1 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if got := r.j.Commits() - commits0; got != 2 {
				t.Errorf("%d fsyncs during a commit made %d commits; want 2 (the one in flight, and one for all of them)", n, got)
			}
			// The in-flight overwrite flushes once, the group's commit
			// (new files: ordered) twice.
			if got := r.flushes.Load() - flushes0; got != 3 {
				t.Errorf("%d flushes for %d fsyncs; want 3", got, n+1)
			}
			got, _, err := names(t, crashCopy(t, dir), OpenOptions{})
			if err != nil || len(got) != n+1 {
				t.Errorf("after a crash: %v, %v; want first and %d more", got, err, n)
			}
		})
	}
}

// TestWALBackgroundCheckpoint: goroutines commit concurrently while the
// committer checkpoints in the background (a half of the log fills every
// few commits); a crash copy after they finish holds every file, and so
// does the image after Close. Run under -race.
func TestWALBackgroundCheckpoint(t *testing.T) {
	dir := newWALImage(t, walTestBlocks)
	r := openWALRigEvery(t, dir, time.Hour)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				ino := uint64(10 + g*each + i)
				r.create(ino, fmt.Sprintf("f%03d", ino), int64(1+ino%(testBlocks-1)))
				if err := r.j.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, _, err := names(t, crashCopy(t, dir), OpenOptions{})
	if err != nil || len(got) != workers*each {
		t.Fatalf("after a crash: %d files, %v; want %d", len(got), err, workers*each)
	}
	if r.ckpts.Load() == 0 {
		t.Errorf("no checkpoint ran while %d records went through a log of %d blocks", workers*each, walTestBlocks)
	}
	r.close(t)
	if got, _, err := names(t, dir, OpenOptions{}); err != nil || len(got) != workers*each {
		t.Errorf("after Close: %d files, %v; want %d", len(got), err, workers*each)
	}
}

// TestWALCheckpointOncePerHalf: the committer checkpoints once per half
// of the log, when a record takes it past its middle, not after every
// record past the middle (that ran a meta.db transaction every few
// commits, beside the commits' flushes). Each half fill asks once, and a
// commit that needs the other half before that checkpoint ran runs one
// itself: at most two a half.
func TestWALCheckpointOncePerHalf(t *testing.T) {
	for _, walBlocks := range []int64{16, 64} {
		t.Run(fmt.Sprint(walBlocks), func(t *testing.T) {
			dir := newWALImage(t, walBlocks)
			r := openWALRigEvery(t, dir, time.Hour)
			const commits = 256 // a one-block record each
			for i := range commits {
				ino := uint64(10 + i)
				r.create(ino, fmt.Sprintf("f%03d", ino), int64(1+ino%(testBlocks-1)))
				if err := r.j.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			halves := commits / (walBlocks / 2)
			if n := r.ckpts.Load(); n > 2*halves {
				t.Errorf("%d checkpoints for %d one-block records in halves of %d blocks; want at most %d",
					n, commits, walBlocks/2, 2*halves)
			}
			r.close(t)
			if got, _, err := names(t, dir, OpenOptions{}); err != nil || len(got) != commits {
				t.Errorf("after Close: %d files, %v; want %d", len(got), err, commits)
			}
		})
	}
}

// TestWALOldImage: an image made without the log commits each time to
// meta.db, as before: its sequence advances with every commit.
func TestWALOldImage(t *testing.T) {
	dir := newImage(t)
	img, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j := img.Journal(JournalOptions{Interval: -1})
	j.Start(nil)
	j.PutDirent(RootIno, "x", 7)
	j.PutInode(Static{Ino: 7, Mode: syscall.S_IFREG | 0o644, Nlink: 1})
	if err := j.Commit(); err != nil {
		t.Fatal(err)
	}
	if img.WALBlocks() != 0 || img.checkpointed() != img.seq {
		t.Errorf("old image: log of %d blocks, meta.db at %d of %d; want none and meta.db current", img.WALBlocks(), img.checkpointed(), img.seq)
	}
	j.Close()
	img.Close()
}

func TestMapsAnew(t *testing.T) {
	x := func(page, count, block int64, unwritten bool) Extent {
		return Extent{Page: page, Count: count, Block: block, Unwritten: unwritten}
	}
	for _, tc := range []struct {
		name      string
		old, next []Extent
		want      bool
	}{
		{"same", []Extent{x(0, 4, 10, false)}, []Extent{x(0, 4, 10, false)}, false},
		{"split the same blocks", []Extent{x(0, 4, 10, false)}, []Extent{x(0, 2, 10, false), x(2, 2, 12, false)}, false},
		{"merged", []Extent{x(0, 2, 10, false), x(2, 2, 12, false)}, []Extent{x(0, 4, 10, false)}, false},
		{"punched", []Extent{x(0, 4, 10, false)}, []Extent{x(0, 1, 10, false)}, false},
		{"new page", []Extent{x(0, 4, 10, false)}, []Extent{x(0, 5, 10, false)}, true},
		{"moved", []Extent{x(0, 4, 10, false)}, []Extent{x(0, 4, 20, false)}, true},
		{"unwritten to written", []Extent{x(0, 4, 10, true)}, []Extent{x(0, 4, 10, false)}, true},
		{"new unwritten", nil, []Extent{x(0, 4, 10, true)}, false},
		{"hole filled", []Extent{x(0, 1, 10, false), x(2, 1, 12, false)}, []Extent{x(0, 3, 10, false)}, true},
		{"unsorted old", []Extent{x(2, 2, 12, false), x(0, 2, 10, false)}, []Extent{x(0, 4, 10, false)}, false},
	} {
		if got := mapsAnew(tc.old, tc.next); got != tc.want {
			t.Errorf("%s: %v; want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzWALRecord: any bytes in the log are a record that checks and
// decodes, or an error, never a panic; a record that decodes encodes back
// to the same payload.
func FuzzWALRecord(f *testing.F) {
	var uuid [16]byte
	f.Add(encodeWAL(uuid, walRecord{seq: 3, log: []record{
		{kind: recInode, static: Static{Ino: 5, Mode: syscall.S_IFLNK | 0o777, Nlink: 1, Target: "t"}},
		{kind: recDirent, dir: 1, name: "n", ino: 5},
		{kind: recXattr, dir: 5, name: "user.a", value: []byte("v")},
		{kind: recXattr, dir: 5, name: "user.b"},
		{kind: recDrop, dir: 9},
	}, snaps: []snapshot{{ino: 5, dyn: Dynamic{Size: 9}, hasExtents: true, extents: []Extent{{Page: 1, Count: 2, Block: 3, Unwritten: true}}}, {ino: 6}},
		sums: map[int64]uint32{4: 7}}), false)
	f.Add([]byte("holefswl"), true)
	f.Fuzz(func(t *testing.T, b []byte, reseal bool) {
		if reseal && len(b) >= walHeader {
			b = bytes.Clone(b)
			n := min(int(be.Uint32(b[16:])), len(b)-walHeader)
			be.PutUint32(b[16:], uint32(n))
			be.PutUint32(b[20:], walSum(uuid, b[:20], b[walHeader:walHeader+n]))
			b = append(b, make([]byte, BlockSize)...)
		}
		seq, _, p, err := walFrame(uuid, b)
		if err != nil {
			if !errors.Is(err, syscall.EUCLEAN) {
				t.Fatalf("frame error %v does not wrap EUCLEAN", err)
			}
			return
		}
		r, err := decodeWALPayload(seq, p)
		if err != nil {
			if !errors.Is(err, syscall.EUCLEAN) {
				t.Fatalf("decode error %v does not wrap EUCLEAN", err)
			}
			return
		}
		if again := encodeWALPayload(r); !bytes.Equal(again, p) {
			t.Fatalf("decoded %+v encodes to %x, not %x", r, again, p)
		}
	})
}

// sumSource hands a journal data checksums, as blockdev.Checksummed does.
type sumSource struct{ m map[int64]uint32 }

func (s *sumSource) Take() map[int64]uint32 {
	m := s.m
	s.m = map[int64]uint32{}
	return m
}

func (s *sumSource) Untake(m map[int64]uint32) { s.m = m }

// TestWALChecksums: on an image with data checksums, a checksum committed
// to the log is found by Checksum before the checkpoint puts it in
// meta.db, and after; and a crash before the checkpoint replays it.
func TestWALChecksums(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	if _, err := Create(dir, CreateOptions{Blocks: testBlocks, Incompat: IncompatWAL | IncompatDataChecksums, WALBlocks: 64}); err != nil {
		t.Fatal(err)
	}
	img, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	f, err := os.OpenFile(img.DataPath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := &sumSource{m: map[int64]uint32{11: 0xabcd}}
	j := img.Journal(JournalOptions{Interval: -1, Flush: f.Sync, Checksums: sums,
		WriteLog: func(p []byte, block int64) error { _, err := f.WriteAt(p, block*BlockSize); return err }})
	j.Start(nil)
	src := &fileSrc{dyn: Dynamic{Size: BlockSize}, exts: []Extent{{Page: 0, Count: 1, Block: 11}}}
	j.PutInode(Static{Ino: 5, Mode: syscall.S_IFREG | 0o644, Nlink: 1})
	j.PutDirent(RootIno, "f", 5)
	e := j.Entry(5)
	e.SetSource(src)
	e.Dirty()
	if err := j.Commit(); err != nil {
		t.Fatal(err)
	}
	if img.checkpointed() == img.seq {
		t.Fatal("the commit went to meta.db: the test needs it in the log only")
	}
	if c, ok := img.Checksum(11); !ok || c != 0xabcd {
		t.Errorf("before the checkpoint: checksum %x, %v; want abcd", c, ok)
	}
	crashed := crashCopy(t, dir)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if c, ok := img.Checksum(11); !ok || c != 0xabcd || len(img.walSums) != 0 {
		t.Errorf("after the checkpoint: checksum %x, %v, %d still held in memory; want abcd from meta.db", c, ok, len(img.walSums))
	}
	rimg, err := Open(crashed, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rimg.Close()
	if c, ok := rimg.Checksum(11); !ok || c != 0xabcd {
		t.Errorf("after a crash: checksum %x, %v; want abcd replayed", c, ok)
	}
}
