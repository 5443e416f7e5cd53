package meta

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestWALRecordLargerThanHalf: a commit too large for half the log goes
// to meta.db directly; the log commits after it must still replay after
// a crash, whichever half and position they land at.
func TestWALRecordLargerThanHalf(t *testing.T) {
	for _, before := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("%d records before", before), func(t *testing.T) {
			dir := newWALImage(t, walTestBlocks)
			r := openWALRig(t, dir)
			var want []string
			ino := uint64(10)
			commit := func(name string, xattr int) {
				t.Helper()
				ino++
				r.create(ino, name, int64(ino))
				if xattr > 0 {
					r.j.PutXattr(ino, "user.big", make([]byte, xattr))
				}
				if err := r.j.Commit(); err != nil {
					t.Fatal(err)
				}
				want = append(want, name)
			}
			for i := range before {
				commit(fmt.Sprintf("a%d", i), 0)
			}
			// Five blocks of xattr: larger than a half of four.
			commit("big", 5*BlockSize)
			commit("after1", 0)
			commit("after2", 0)
			slices.Sort(want)
			got, _, err := names(t, crashCopy(t, dir), OpenOptions{})
			if err != nil {
				t.Fatalf("Open after a crash: %v", err)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("files %v; want %v", got, want)
			}
		})
	}
}

// TestWALLostDirectCommit: a commit too large for the log exists only in
// meta.db; a meta.db that lost it (its newer meta page damaged) is a
// rollback, as on an image without a log, not a silent loss.
func TestWALLostDirectCommit(t *testing.T) {
	dir := newWALImage(t, walTestBlocks)
	r := openWALRig(t, dir)
	r.create(11, "small", 11)
	if err := r.j.Commit(); err != nil {
		t.Fatal(err)
	}
	r.create(12, "big", 12)
	r.j.PutXattr(12, "user.big", make([]byte, 5*BlockSize))
	if err := r.j.Commit(); err != nil {
		t.Fatal(err)
	}
	r.close(t)
	s, err := checkStore(filepath.Join(dir, MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	b, ps := metaBytes(t, dir)
	b[s.active*ps+pageHeader+48] ^= 0x02 // its txid: the damaged page now reads older
	writeMetaBytes(t, dir, b)
	_, _, err = names(t, dir, OpenOptions{})
	var rbe *RollbackError
	if !errors.As(err, &rbe) || !errors.Is(err, syscall.EUCLEAN) {
		t.Fatalf("Open: %v; want a RollbackError", err)
	}
}
