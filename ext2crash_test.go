package holefs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/meta"
)

// ext2Page is page p of the file tagged seed: its page number, then the
// seed's pattern, never zero, so a page read anywhere tells whose it is.
func ext2Page(seed byte, p int64) []byte {
	b := pattern(seed, pg)
	binary.LittleEndian.PutUint64(b, uint64(p)+1)
	return b
}

func writeExt2Pages(t *testing.T, f *holefs.File, seed byte, p, n int64) {
	t.Helper()
	for i := p; i < p+n; i++ {
		writeAt(t, f, ext2Page(seed, i), i*pg)
	}
}

// crashCase is what a crash copy must show: files by name with their
// seeds, and the pages of each that were fsynced before the copy.
type crashCase struct {
	at     string
	dir    string
	synced map[string]map[int64]bool
}

// TestExt2ImageCrash: copies of an ext2 image taken around every commit
// (after its data flush and indirect-block write-out, before and after
// its meta.db transaction) and mid-workload open, pass fsck, hold every
// page fsynced before the copy, and map no page to anything but the
// file's own data or zeros: no indirect block of the committed tree
// points at freed, reused or unwritten blocks. The workload truncates a
// file across the double- and triple-indirect trees, refills the freed
// space with another file's direct writes and grows the tree again.
func TestExt2ImageCrash(t *testing.T) {
	dir := mkExt2Image(t, 4<<20) // small: every copy copies the whole data file
	seeds := map[string]byte{"a": 1, "b": 2, "c": 3}
	synced := map[string]map[int64]bool{"a": {}, "b": {}, "c": {}}
	var cases []crashCase
	snap := func(at string) {
		s := make(map[string]map[int64]bool)
		for n, ps := range synced {
			s[n] = maps.Clone(ps)
		}
		cases = append(cases, crashCase{at, crashCopy(t, dir), s})
	}
	commit := 0
	hooks := &holefs.Hooks{
		BeforeCommit: func() { commit++; snap(fmt.Sprintf("before commit %d", commit)) },
		AfterCommit:  func() { snap(fmt.Sprintf("after commit %d", commit)) },
	}
	fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1, Hooks: hooks})
	must(t, err)
	defer fsys.Close()
	fsync := func(f *holefs.File, name string, pages ...[2]int64) {
		must(t, f.Sync())
		for _, r := range pages {
			for p := r[0]; p < r[0]+r[1]; p++ {
				synced[name][p] = true
			}
		}
	}

	a := create(t, fsys, "a")
	aPages := [][2]int64{{0, 3}, {10, 4}, {ext2DInd - 3, 5}, {ext2TInd - 2, 4}}
	for _, r := range aPages {
		writeExt2Pages(t, a, seeds["a"], r[0], r[1])
	}
	fsync(a, "a", aPages...)
	snap("a synced")

	// What a truncate removed need not survive a crash, synced or not
	// (it may, until the truncate commits).
	forget := func(name string, from int64) {
		for p := range synced[name] {
			if p >= from {
				delete(synced[name], p)
			}
		}
	}
	const cut = ext2DInd - 1
	must(t, a.Truncate(cut*pg))
	forget("a", cut)
	b, err := fsys.OpenFile("b", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	must(t, err)
	defer b.Close()
	writeExt2Pages(t, b, seeds["b"], 0, 40) // on the device at once, no commit
	c := create(t, fsys, "c")
	writeExt2Pages(t, c, seeds["c"], ext2DInd-6, 20)
	writeExt2Pages(t, c, seeds["c"], ext2TInd, 3)
	snap("truncated, not committed")
	fsync(c, "c", [2]int64{ext2DInd - 6, 20}, [2]int64{ext2TInd, 3})
	must(t, a.Sync())
	snap("truncate synced")

	writeExt2Pages(t, a, seeds["a"], ext2TInd+5, 3)
	must(t, b.Truncate(5*pg))
	forget("b", 5)
	writeExt2Pages(t, b, seeds["b"], 2000, 10)
	snap("regrown, not committed")
	fsync(a, "a", [2]int64{ext2TInd + 5, 3})
	must(t, fsys.Sync())
	for _, p := range []int64{0, 1, 2, 3, 4, 2000, 2005, 2009} {
		synced["b"][p] = true
	}
	snap("all synced")

	if commit < 3 {
		t.Fatalf("only %d commits: the hooks did not run", commit)
	}
	for _, cc := range cases {
		checkExt2Crash(t, cc, seeds)
	}
}

func checkExt2Crash(t *testing.T, cc crashCase, seeds map[string]byte) {
	t.Helper()
	fsckExt2Clean(t, cc.dir, cc.at)
	fsys, err := holefs.Open(cc.dir, holefs.Options{CommitInterval: -1})
	if err != nil {
		t.Fatalf("%s: open the copy: %v", cc.at, err)
	}
	defer fsys.Close()
	for name, seed := range seeds {
		f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
		if errors.Is(err, os.ErrNotExist) && len(cc.synced[name]) == 0 {
			continue
		}
		if err != nil {
			t.Fatalf("%s: open %s: %v", cc.at, name, err)
		}
		seen := map[int64]bool{}
		buf := make([]byte, pg)
		for off := int64(0); ; {
			d, err := f.Seek(off, holefs.SeekData)
			if errors.Is(err, syscall.ENXIO) {
				break
			}
			must(t, err)
			h, err := f.Seek(d, holefs.SeekHole)
			must(t, err)
			for p := d / pg; p*pg < h; p++ {
				n, err := f.ReadAt(buf, p*pg)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("%s: %s page %d: %v", cc.at, name, p, err)
				}
				if got := buf[:n]; !bytes.Equal(got, ext2Page(seed, p)[:n]) && !bytes.Equal(got, make([]byte, n)) {
					t.Fatalf("%s: %s page %d holds data that is not the file's (first bytes %x)", cc.at, name, p, got[:16])
				}
				seen[p] = bytes.Equal(buf[:n], ext2Page(seed, p)[:n]) && n == pg
			}
			off = h
		}
		for p := range cc.synced[name] {
			if !seen[p] {
				t.Errorf("%s: %s page %d was fsynced and is gone", cc.at, name, p)
			}
		}
		must(t, f.Close())
	}
}

// fsckExt2 runs fsck (Check, or Repair) on an ext2 image with its block
// map checker.
func fsckExt2(t *testing.T, dir string, repair bool) *meta.Report {
	t.Helper()
	img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: !repair})
	must(t, err)
	defer img.Close()
	var opts meta.CheckOptions
	closeDev, err := ext2fs.SetFsck(img, &opts)
	must(t, err)
	defer closeDev()
	check := meta.Check
	if repair {
		check = meta.Repair
	}
	rep, err := check(img, opts)
	must(t, err)
	return rep
}

// fsckExt2Clean fails the test on any fsck error or warning.
func fsckExt2Clean(t *testing.T, dir, at string) {
	t.Helper()
	for _, f := range fsckExt2(t, dir, false).Findings {
		if f.Severity != meta.Info {
			t.Errorf("%s: fsck: %v", at, f)
		}
	}
}
