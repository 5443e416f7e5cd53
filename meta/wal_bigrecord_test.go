package meta

import (
	"fmt"
	"slices"
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
