package meta

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"go.etcd.io/bbolt"
)

func TestCheckHealthy(t *testing.T) {
	dir := testImage(t)
	img := openImage(t, dir, true)
	var phases []string
	rep, err := Check(img, CheckOptions{Progress: func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		if p.Total > 0 && p.Done > p.Total {
			t.Errorf("progress %+v: done past total", p)
		}
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(rep.Findings) != 0 {
		t.Errorf("findings on a healthy image:\n%s", findings(rep))
	}
	want := Report{SB: img.SB, Inodes: 5, Dirs: 2, Files: 2, Symlinks: 1, Extents: 3, Owned: 4, Free: testBlocks - 1 - 4}
	if totals(rep) != totals(&want) || rep.SB != img.SB || rep.Repaired {
		t.Errorf("report %+v, want %+v", *rep, want)
	}
	if !slices.Equal(phases, []string{"load", "extents", "namespace"}) {
		t.Errorf("progress phases %q", phases)
	}
	img.Close()

	// Repair of a healthy image writes nothing.
	img = openImage(t, dir, false)
	before := loadOK(t, img).Seq
	rep, err = Repair(img, CheckOptions{})
	if err != nil || rep.Repaired || len(rep.Findings) != 0 {
		t.Fatalf("Repair of a healthy image: repaired %v, %v, findings:\n%s", rep.Repaired, err, findings(rep))
	}
	if after := loadOK(t, img).Seq; after != before {
		t.Errorf("Repair of a healthy image committed: seq %d -> %d", before, after)
	}
}

func TestCheckEmptyImage(t *testing.T) {
	img := openImage(t, newImage(t), true)
	rep, err := Check(img, CheckOptions{})
	if err != nil || len(rep.Findings) != 0 {
		t.Fatalf("Check of a new image: %v, findings:\n%s", err, findings(rep))
	}
	if rep.Inodes != 1 || rep.Dirs != 1 || rep.Free != testBlocks-1 {
		t.Errorf("new image: %+v", *rep)
	}
}

// TestFsck damages a healthy image in one way per case, checks that Check
// finds exactly that (each finding naming its inode, page or name), that
// Repair reports the same and fixes it, and that Check then finds nothing
// left to fix.
func TestFsck(t *testing.T) {
	tests := []struct {
		name      string
		damage    func(tx *bbolt.Tx)
		keepState bool     // do not reseal the state record after damage
		want      []string // "severity kind" of each finding, sorted
		left      int      // errors Repair cannot fix
		after     func(t *testing.T, s *Snapshot)
	}{
		{
			name:   "damaged inode record",
			damage: func(tx *bbolt.Tx) { damage(tx, bucketInodes, inoKey(4)) },
			want:   []string{"error bad-record", "error dangling-entry"},
			after: func(t *testing.T, s *Snapshot) {
				noInode(t, s, 4)
				noEntry(t, s, 1, "s")
			},
		},
		{
			name: "symlink without a target",
			damage: func(tx *bbolt.Tx) {
				// Sealed, so only the decoder's field check finds it.
				k, v := encodeInode(Inode{Ino: 4, Mode: syscall.S_IFLNK | 0o777, Nlink: 1, Target: "x"})
				body := v[:len(v)-5]
				be.PutUint16(body[inodeFixed-2:], 0)
				put(bucket(tx, bucketInodes), k, sealed(k, body))
			},
			want: []string{"error bad-record", "error dangling-entry"},
			after: func(t *testing.T, s *Snapshot) {
				noInode(t, s, 4)
				noEntry(t, s, 1, "s")
			},
		},
		{
			name:   "damaged extent record",
			damage: func(tx *bbolt.Tx) { damage(tx, bucketExtents, extentKey(3, 0)) },
			want:   []string{"error bad-record"},
			after: func(t *testing.T, s *Snapshot) {
				wantExtents(t, s, 3, Extent{Page: 2, Count: 1, Block: 12, Unwritten: true})
			},
		},
		{
			name: "extent past the end of the device",
			damage: func(tx *bbolt.Tx) {
				putExtent(tx, 5, Extent{Page: 0, Count: 10, Block: testBlocks - 4, Unwritten: true})
			},
			want: []string{"error bad-record"},
			after: func(t *testing.T, s *Snapshot) {
				wantExtents(t, s, 5, Extent{Page: 0, Count: 4, Block: testBlocks - 4, Unwritten: true})
			},
		},
		{
			name:   "extent at block 0",
			damage: func(tx *bbolt.Tx) { putExtent(tx, 5, Extent{Page: 0, Count: 1, Block: 0}) },
			want:   []string{"error bad-record"},
			after:  func(t *testing.T, s *Snapshot) { wantExtents(t, s, 5) },
		},
		{
			name:   "damaged directory entry",
			damage: func(tx *bbolt.Tx) { damage(tx, bucketDirents, direntKey(2, "f")) },
			want:   []string{"error bad-record", "error unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				lf := lookup(t, s, 1, "lost+found")
				if got := lookup(t, s, lf, "#3"); got != 3 {
					t.Errorf("/lost+found/#3 is inode %d, want 3", got)
				}
				wantNlink(t, s, 1, 4)
				wantNlink(t, s, lf, 2)
			},
		},
		{
			name:   "damaged xattr",
			damage: func(tx *bbolt.Tx) { damage(tx, bucketXattrs, xattrKey(3, "user.x")) },
			want:   []string{"error bad-record"},
			after:  func(t *testing.T, s *Snapshot) { wantXattrs(t, s, 0) },
		},
		{
			name:      "damaged state record",
			damage:    func(tx *bbolt.Tx) { damage(tx, bucketSuper, []byte(keyState)) },
			keepState: true,
			want:      []string{"error state"},
		},
		{
			name: "buckets where records belong",
			damage: func(tx *bbolt.Tx) {
				_, err := bucket(tx, bucketDirents).CreateBucket(direntKey(1, "nested"))
				must(err)
				must(bucket(tx, bucketSuper).Delete([]byte(keyState)))
				_, err = bucket(tx, bucketSuper).CreateBucket([]byte(keyState))
				must(err)
			},
			keepState: true,
			want:      []string{"error bad-record", "error state"},
			after:     func(t *testing.T, s *Snapshot) { noEntry(t, s, 1, "nested") },
		},
		{
			name:      "missing state record",
			damage:    func(tx *bbolt.Tx) { must(bucket(tx, bucketSuper).Delete([]byte(keyState))) },
			keepState: true,
			want:      []string{"error state"},
		},
		{
			name: "state counts wrong",
			damage: func(tx *bbolt.Tx) {
				resealState(tx)
				st, err := decodeState(bucket(tx, bucketSuper).Get([]byte(keyState)))
				must(err)
				st.Owned += 3
				st.Inodes--
				must(bucket(tx, bucketSuper).Put([]byte(keyState), encodeState(st)))
			},
			keepState: true,
			want:      []string{"error state"},
			after: func(t *testing.T, s *Snapshot) {
				if s.Owned != 4 || s.NInodes != 5 {
					t.Errorf("state after repair: %d blocks, %d inodes; want 4, 5", s.Owned, s.NInodes)
				}
			},
		},
		{
			name:   "root missing",
			damage: func(tx *bbolt.Tx) { must(bucket(tx, bucketInodes).Delete(inoKey(1))) },
			want:   []string{"error root"},
			after: func(t *testing.T, s *Snapshot) {
				wantNlink(t, s, 1, 3)
				lookup(t, s, 1, "a")
			},
		},
		{
			name:   "root is a file",
			damage: func(tx *bbolt.Tx) { putInode(tx, Inode{Ino: 1, Mode: syscall.S_IFREG | 0o644, Nlink: 1}) },
			want:   []string{"error root", "error unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				if !isDir(s.Inodes[1]) {
					t.Errorf("root is %#o", s.Inodes[1].Mode)
				}
				lookup(t, s, 1, "a")
				lf := lookup(t, s, 1, "lost+found")
				if got := lookup(t, s, lf, "#6"); got != 6 || !isFile(s.Inodes[6]) {
					t.Errorf("old root: /lost+found/#6 is inode %d (%v)", got, s.Inodes[got])
				}
			},
		},
		{
			name:   "extents on a directory",
			damage: func(tx *bbolt.Tx) { putExtent(tx, 2, Extent{Page: 1, Count: 2, Block: 30}) },
			want:   []string{"error extents-non-file", "info unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				wantExtents(t, s, 2)
				wantExtents(t, s, 6, Extent{Page: 1, Count: 2, Block: 30})
				if s.Inodes[6].Size != 3*BlockSize || !isFile(s.Inodes[6]) {
					t.Errorf("new file %+v", s.Inodes[6])
				}
				lookup(t, s, lookup(t, s, 1, "lost+found"), "#6")
			},
		},
		{
			name: "extents on a FIFO",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 6, Mode: syscall.S_IFIFO | 0o600, Nlink: 1})
				putDirent(tx, 1, "p", 6)
				putExtent(tx, 6, Extent{Page: 0, Count: 1, Block: 30})
			},
			want: []string{"error extents-non-file", "info unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				wantExtents(t, s, 6)
				wantExtents(t, s, 7, Extent{Page: 0, Count: 1, Block: 30})
				if s.Inodes[6].Mode != syscall.S_IFIFO|0o600 {
					t.Errorf("the FIFO became %#o", s.Inodes[6].Mode)
				}
			},
		},
		{
			name: "special files with a size or a device number they cannot have",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 6, Mode: syscall.S_IFIFO | 0o600, Nlink: 1, Size: 100})
				putInode(tx, Inode{Ino: 7, Mode: syscall.S_IFSOCK | 0o600, Nlink: 1, Rdev: 5})
				putInode(tx, Inode{Ino: 8, Mode: syscall.S_IFREG | 0o600, Nlink: 1, Rdev: 5})
				putInode(tx, Inode{Ino: 9, Mode: syscall.S_IFBLK | 0o600, Nlink: 1, Rdev: 259<<8 | 1, Size: 1})
				putInode(tx, Inode{Ino: 10, Mode: syscall.S_IFCHR | 0o600, Nlink: 1, Rdev: 1<<8 | 3}) // fine
				for ino := uint64(6); ino <= 10; ino++ {
					putDirent(tx, 1, "n"+utoa(ino), ino)
				}
			},
			want: []string{"error special-file", "error special-file", "error special-file", "error special-file"},
			after: func(t *testing.T, s *Snapshot) {
				for ino, rdev := range map[uint64]uint64{6: 0, 7: 0, 8: 0, 9: 259<<8 | 1, 10: 1<<8 | 3} {
					if in := s.Inodes[ino]; in.Size != 0 || in.Rdev != rdev {
						t.Errorf("inode %d: size %d rdev %#x, want 0 and %#x", ino, in.Size, in.Rdev, rdev)
					}
				}
			},
		},
		{
			name:   "extents of a missing inode",
			damage: func(tx *bbolt.Tx) { putExtent(tx, 9, Extent{Page: 0, Count: 1, Block: 40}) },
			want:   []string{"error missing-inode", "info unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				wantNlink(t, s, 9, 1)
				lookup(t, s, lookup(t, s, 1, "lost+found"), "#9")
			},
		},
		{
			name:   "xattrs of a missing inode",
			damage: func(tx *bbolt.Tx) { putXattr(tx, 9, "user.y", []byte("v")) },
			want:   []string{"error missing-inode", "info unreachable"},
			after:  func(t *testing.T, s *Snapshot) { wantXattrs(t, s, 2) },
		},
		{
			name:   "entries of a missing directory",
			damage: func(tx *bbolt.Tx) { putDirent(tx, 9, "x", 3) },
			want:   []string{"error link-count", "error missing-inode", "info unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				if !isDir(s.Inodes[9]) {
					t.Errorf("inode 9 recreated as %#o, want a directory", s.Inodes[9].Mode)
				}
				wantNlink(t, s, 3, 2)
				lookup(t, s, lookup(t, s, 1, "lost+found"), "#9")
			},
		},
		{
			name: "extents overlapping in a file",
			// The extent at page 1 loses page 1 to the one at page 0,
			// and then wins page 2 from the one at page 2.
			damage: func(tx *bbolt.Tx) { putExtent(tx, 3, Extent{Page: 1, Count: 2, Block: 40, Unwritten: true}) },
			want:   []string{"error extent-overlap", "error extent-overlap"},
			after: func(t *testing.T, s *Snapshot) {
				wantExtents(t, s, 3, Extent{Page: 0, Count: 2, Block: 10}, Extent{Page: 2, Count: 1, Block: 41, Unwritten: true})
			},
		},
		{
			name: "block owned twice",
			// Inode 5's pages 2 and 3 map inode 3's blocks 10 and 11.
			damage: func(tx *bbolt.Tx) { putExtent(tx, 5, Extent{Page: 1, Count: 3, Block: 9, Unwritten: true}) },
			want:   []string{"error block-shared"},
			after: func(t *testing.T, s *Snapshot) {
				wantExtents(t, s, 3, Extent{Page: 0, Count: 2, Block: 10}, Extent{Page: 2, Count: 1, Block: 12, Unwritten: true})
				wantExtents(t, s, 5, Extent{Page: 0, Count: 1, Block: 20}, Extent{Page: 1, Count: 1, Block: 9, Unwritten: true})
			},
		},
		{
			name: "block owned by a file and an orphan",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 7, Mode: syscall.S_IFREG | 0o644, Size: BlockSize})
				putExtent(tx, 7, Extent{Page: 0, Count: 1, Block: 20})
			},
			want: []string{"error block-shared", "info orphan"},
			after: func(t *testing.T, s *Snapshot) {
				wantExtents(t, s, 5, Extent{Page: 0, Count: 1, Block: 20})
				wantExtents(t, s, 7)
			},
		},
		{
			name:   "written extent past EOF",
			damage: func(tx *bbolt.Tx) { putExtent(tx, 5, Extent{Page: 1, Count: 1, Block: 21}) },
			want:   []string{"warning past-eof"},
		},
		{
			name:   "unwritten extent past EOF",
			damage: func(tx *bbolt.Tx) { putExtent(tx, 5, Extent{Page: 1, Count: 4, Block: 21, Unwritten: true}) },
		},
		{
			name:   "entries of a regular file",
			damage: func(tx *bbolt.Tx) { putDirent(tx, 3, "x", 5) },
			want:   []string{"error entry-in-non-dir"},
			after:  func(t *testing.T, s *Snapshot) { noEntry(t, s, 3, "x") },
		},
		{
			name:   "dangling entry",
			damage: func(tx *bbolt.Tx) { putDirent(tx, 2, "ghost", 1000) },
			want:   []string{"error dangling-entry"},
			after:  func(t *testing.T, s *Snapshot) { noEntry(t, s, 2, "ghost") },
		},
		{
			name:   "hard link to a directory",
			damage: func(tx *bbolt.Tx) { putDirent(tx, 1, "b", 2) },
			want:   []string{"error dir-linked-twice"},
			after:  func(t *testing.T, s *Snapshot) { noEntry(t, s, 1, "b") },
		},
		{
			name:   "entry naming the root",
			damage: func(tx *bbolt.Tx) { putDirent(tx, 2, "up", 1) },
			want:   []string{"error dir-linked-twice"},
		},
		{
			name: "unreachable directory cycle",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 50, Mode: syscall.S_IFDIR | 0o755, Nlink: 3})
				putInode(tx, Inode{Ino: 51, Mode: syscall.S_IFDIR | 0o755, Nlink: 2})
				putDirent(tx, 50, "b", 51)
				putDirent(tx, 51, "a", 50)
			},
			want: []string{"error dir-linked-twice", "error unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				lf := lookup(t, s, 1, "lost+found")
				lookup(t, s, lookup(t, s, lf, "#50"), "b")
				noEntry(t, s, 51, "a")
			},
		},
		{
			name: "unreachable tree",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 50, Mode: syscall.S_IFDIR | 0o755, Nlink: 3})
				putInode(tx, Inode{Ino: 60, Mode: syscall.S_IFDIR | 0o755, Nlink: 2})
				putInode(tx, Inode{Ino: 70, Mode: syscall.S_IFREG | 0o644, Nlink: 1})
				putDirent(tx, 50, "sub", 60)
				putDirent(tx, 60, "file", 70)
			},
			want: []string{"error unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				lf := lookup(t, s, 1, "lost+found")
				if got := lookup(t, s, lookup(t, s, lookup(t, s, lf, "#50"), "sub"), "file"); got != 70 {
					t.Errorf("/lost+found/#50/sub/file is inode %d", got)
				}
			},
		},
		{
			name: "unreachable file, lost+found present",
			damage: func(tx *bbolt.Tx) {
				addLostFound(tx, 40, "#60")
				putInode(tx, Inode{Ino: 60, Mode: syscall.S_IFREG, Nlink: 1})
			},
			want: []string{"error unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				if got := lookup(t, s, 40, "#60.1"); got != 60 {
					t.Errorf("/lost+found/#60.1 is inode %d", got)
				}
				wantNlink(t, s, 40, 2)
			},
		},
		{
			name: "unreachable file, lost+found is a file",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 60, Mode: syscall.S_IFREG, Nlink: 1})
				putDirent(tx, 1, "lost+found", 5)
				putInode(tx, Inode{Ino: 5, Mode: syscall.S_IFREG | 0o600, Nlink: 3, Size: 100})
			},
			want: []string{"error unreachable", "info lost+found"},
			after: func(t *testing.T, s *Snapshot) {
				lf := lookup(t, s, 1, "lost+found")
				lookup(t, s, lf, "#60")
				if got := lookup(t, s, lf, "#5"); got != 5 {
					t.Errorf("/lost+found/#5 is inode %d", got)
				}
				wantNlink(t, s, 5, 3)
			},
		},
		{
			name:   "orphan",
			damage: func(tx *bbolt.Tx) { putInode(tx, Inode{Ino: 60, Mode: syscall.S_IFREG, Size: 5}) },
			want:   []string{"info orphan"},
		},
		{
			name: "directory without links holding entries",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 60, Mode: syscall.S_IFDIR})
				putInode(tx, Inode{Ino: 61, Mode: syscall.S_IFREG, Nlink: 1})
				putDirent(tx, 60, "x", 61)
			},
			want: []string{"error link-count", "error unreachable"},
			after: func(t *testing.T, s *Snapshot) {
				wantNlink(t, s, 60, 2)
			},
		},
		{
			name:   "linked inode with no links",
			damage: func(tx *bbolt.Tx) { putInode(tx, Inode{Ino: 4, Mode: syscall.S_IFLNK | 0o777, Target: "a/f"}) },
			want:   []string{"error link-count"},
			after:  func(t *testing.T, s *Snapshot) { wantNlink(t, s, 4, 1) },
		},
		{
			name: "wrong link counts",
			damage: func(tx *bbolt.Tx) {
				putInode(tx, Inode{Ino: 5, Mode: syscall.S_IFREG | 0o600, Nlink: 7, Size: 100})
				putInode(tx, Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2})
			},
			want: []string{"error link-count", "error link-count"},
			after: func(t *testing.T, s *Snapshot) {
				wantNlink(t, s, 5, 2)
				wantNlink(t, s, 1, 3)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testImage(t)
			change := update
			if tt.keepState {
				change = raw
			}
			change(t, dir, func(tx *bbolt.Tx) error { tt.damage(tx); return nil })

			img := openImage(t, dir, true)
			rep, err := Check(img, CheckOptions{})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := kinds(rep); !slices.Equal(got, tt.want) {
				t.Fatalf("Check found %q, want %q:\n%s", got, tt.want, findings(rep))
			}
			for _, f := range rep.Findings {
				if f.Fixed {
					t.Errorf("Check claims a fix: %v", f)
				}
				if f.Severity == Error && f.Ino == 0 && f.Kind != KindState {
					t.Errorf("finding names no inode: %v", f)
				}
			}
			img.Close()

			img = openImage(t, dir, false)
			fixed, err := Repair(img, CheckOptions{})
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			if !sameFindings(rep, fixed) {
				t.Errorf("Repair found\n%s\nCheck found\n%s", findings(fixed), findings(rep))
			}
			if nfixed, left := fixed.Errors(); left != tt.left || nfixed != rep.Count(Error)-tt.left {
				t.Errorf("Repair fixed %d errors and left %d, want %d and %d:\n%s", nfixed, left, rep.Count(Error)-tt.left, tt.left, findings(fixed))
			}
			if fixed.Repaired != (rep.Count(Error) > 0 || hasFix(rep)) {
				t.Errorf("Repaired %v with findings:\n%s", fixed.Repaired, findings(fixed))
			}
			again, err := Check(img, CheckOptions{})
			if err != nil {
				t.Fatalf("Check after Repair: %v", err)
			}
			if again.Count(Error) != tt.left || hasFix(again) {
				t.Errorf("Check after Repair:\n%s", findings(again))
			}
			if totals(again) != totals(fixed) {
				t.Errorf("Repair reported totals %v; Check after it %v", totals(fixed), totals(again))
			}
			s := loadOK(t, img)
			if tt.after != nil {
				tt.after(t, s)
			}
		})
	}
}

// totals returns a report's counts.
func totals(r *Report) [9]int64 {
	return [9]int64{r.Inodes, r.Dirs, r.Files, r.Symlinks, r.Special, r.Orphans, r.Extents, r.Owned, r.Free}
}

func addLostFound(tx *bbolt.Tx, ino uint64, taken string) {
	putInode(tx, Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 4})
	putInode(tx, Inode{Ino: ino, Mode: syscall.S_IFDIR | 0o700, Nlink: 2})
	putDirent(tx, 1, "lost+found", ino)
	putDirent(tx, ino, taken, 5)
	putInode(tx, Inode{Ino: 5, Mode: syscall.S_IFREG | 0o600, Nlink: 3, Size: 100})
}

func TestRepairFindsImageChanged(t *testing.T) {
	dir := testImage(t)
	update(t, dir, func(tx *bbolt.Tx) error { putDirent(tx, 1, "ghost", 99); return nil })
	img := openImage(t, dir, false)
	_, err := Repair(img, CheckOptions{Progress: func(p Progress) {
		if p.Phase == "commit" {
			// A commit by someone else between the check and its fixes.
			must(img.db.Update(func(tx *bbolt.Tx) error { resealState(tx); bumpSeq(tx); return nil }))
		}
	}})
	if !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("Repair of an image changed under it: %v, want EAGAIN", err)
	}
	if _, ok := loadOK(t, img).Inodes[1]; !ok {
		t.Fatal("root gone")
	}
	rep, err := Check(img, CheckOptions{})
	if err != nil || rep.Count(Error) != 1 {
		t.Errorf("the failed Repair changed the image: %v\n%s", err, findings(rep))
	}
}

func bumpSeq(tx *bbolt.Tx) {
	st, err := decodeState(bucket(tx, bucketSuper).Get([]byte(keyState)))
	must(err)
	st.Seq++
	must(bucket(tx, bucketSuper).Put([]byte(keyState), encodeState(st)))
}

func TestRepairReadOnlyImage(t *testing.T) {
	dir := testImage(t)
	update(t, dir, func(tx *bbolt.Tx) error { putDirent(tx, 1, "ghost", 99); return nil })
	img := openImage(t, dir, true)
	if _, err := Repair(img, CheckOptions{}); err == nil {
		t.Fatal("Repair of a read-only image succeeded")
	}
	img.Close()
	if _, err := Check(img, CheckOptions{}); err == nil {
		t.Fatal("Check of a closed image succeeded")
	}
}

func TestPrecheck(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		want    []string // "kind fixed" of each finding
		openErr syscall.Errno
		err     syscall.Errno // from Precheck
	}{
		{name: "healthy", damage: func(*testing.T, string) {}},
		{
			name:    "data superblock damaged",
			damage:  func(t *testing.T, dir string) { patchData(t, dir, 20, 0xff) },
			want:    []string{"superblock true"},
			openErr: syscall.EUCLEAN,
		},
		{
			name:    "data superblock zeroed",
			damage:  func(t *testing.T, dir string) { patchData(t, dir, 0, make([]byte, BlockSize)...) },
			want:    []string{"superblock true"},
			openErr: syscall.EUCLEAN,
		},
		{
			name: "meta.db copy damaged",
			damage: func(t *testing.T, dir string) {
				raw(t, dir, func(tx *bbolt.Tx) error { damage(tx, bucketSuper, []byte(keySB)); return nil })
			},
			want:    []string{"superblock true"},
			openErr: syscall.EUCLEAN,
		},
		{
			name: "bucket in place of the copy",
			damage: func(t *testing.T, dir string) {
				raw(t, dir, func(tx *bbolt.Tx) error {
					must(bucket(tx, bucketSuper).Delete([]byte(keySB)))
					_, err := bucket(tx, bucketSuper).CreateBucket([]byte(keySB))
					return err
				})
			},
			want:    []string{"superblock true"},
			openErr: syscall.EUCLEAN,
		},
		{
			name: "buckets missing",
			damage: func(t *testing.T, dir string) {
				raw(t, dir, func(tx *bbolt.Tx) error {
					must(tx.DeleteBucket([]byte(bucketSuper)))
					return tx.DeleteBucket([]byte(bucketXattrs))
				})
			},
			want:    []string{"superblock true", "meta.db true"},
			openErr: syscall.EUCLEAN,
		},
		{
			name: "data file truncated",
			damage: func(t *testing.T, dir string) {
				must(truncate(dir, 10*BlockSize))
			},
			want:    []string{"superblock true"},
			openErr: syscall.EUCLEAN,
		},
		{
			name: "copies of two images",
			damage: func(t *testing.T, dir string) {
				other := newImage(t)
				copyFile(t, other+"/"+MetaFile, dir+"/"+MetaFile)
			},
			want:    []string{"superblock false"},
			openErr: syscall.EUCLEAN,
		},
		{
			name: "both copies damaged",
			damage: func(t *testing.T, dir string) {
				patchData(t, dir, 20, 0xff)
				raw(t, dir, func(tx *bbolt.Tx) error { damage(tx, bucketSuper, []byte(keySB)); return nil })
			},
			openErr: syscall.EUCLEAN,
			err:     syscall.EUCLEAN,
		},
		{
			name: "newer format",
			damage: func(t *testing.T, dir string) {
				sb := readSB(t, dir)
				sb.Incompat |= 1 << 40
				patchData(t, dir, 0, sb.Encode()...)
			},
			openErr: syscall.EOPNOTSUPP,
			err:     syscall.EOPNOTSUPP,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testImage(t)
			tt.damage(t, dir)
			img, err := Open(dir, OpenOptions{ReadOnly: true})
			if tt.openErr == 0 && err != nil || tt.openErr != 0 && !errors.Is(err, tt.openErr) {
				t.Fatalf("Open: %v, want %v", err, tt.openErr)
			}
			if err == nil {
				img.Close()
			}
			for _, repair := range []bool{false, true} {
				found, err := Precheck(dir, repair)
				if tt.err != 0 {
					if !errors.Is(err, tt.err) {
						t.Fatalf("Precheck(repair %v): %v, want %v", repair, err, tt.err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Precheck(repair %v): %v", repair, err)
				}
				var got []string
				for _, f := range found {
					got = append(got, fmt.Sprintf("%s %v", f.Kind, f.Fixed))
					if f.Severity != Error || f.Problem == "" || (f.Fix != "") != f.Fixed && repair {
						t.Errorf("finding %+v", f)
					}
				}
				want := tt.want
				if !repair {
					want = slices.Clone(want)
					for i := range want {
						want[i] = strings.Replace(want[i], "true", "false", 1)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("Precheck(repair %v) found %q, want %q", repair, got, want)
				}
			}
			img, err = Open(dir, OpenOptions{})
			fixable := !slices.Contains(tt.want, "superblock false")
			if fixable != (err == nil) {
				t.Fatalf("Open after Precheck: %v", err)
			}
			if err != nil {
				return
			}
			defer img.Close()
			// The rest of the image is what it was, or Repair rebuilds
			// it from what the missing buckets left.
			if _, err := Repair(img, CheckOptions{}); err != nil {
				t.Fatalf("Repair: %v", err)
			}
			rep, err := Check(img, CheckOptions{})
			if err != nil || len(rep.Findings) != 0 {
				t.Errorf("Check after Precheck and Repair: %v\n%s", err, findings(rep))
			}
		})
	}
}

func TestPrecheckBusy(t *testing.T) {
	dir := testImage(t)
	img := openImage(t, dir, false)
	for _, repair := range []bool{false, true} {
		if _, err := Precheck(dir, repair); !errors.Is(err, syscall.EBUSY) {
			t.Errorf("Precheck(repair %v) of an open image: %v, want EBUSY", repair, err)
		}
	}
	img.Close()
	if _, err := Precheck(t.TempDir(), false); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Precheck of an empty directory: %v, want ENOENT", err)
	}
}

// kinds returns "severity kind" of each finding, sorted.
func kinds(r *Report) []string {
	var s []string
	for _, f := range r.Findings {
		s = append(s, f.Severity.String()+" "+string(f.Kind))
	}
	slices.Sort(s)
	return s
}

func findings(r *Report) string {
	if r == nil {
		return "(no report)"
	}
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\t%v\n\t\tfix: %s (fixed %v)\n", f, f.Fix, f.Fixed)
	}
	return b.String()
}

func hasFix(r *Report) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Fix != "" })
}

// sameFindings reports whether two reports found the same, fixed or not.
func sameFindings(a, b *Report) bool {
	return slices.EqualFunc(a.Findings, b.Findings, func(x, y Finding) bool {
		x.Fixed, y.Fixed = false, false
		return x == y
	})
}

func loadOK(t *testing.T, img *Image) *Snapshot {
	t.Helper()
	s, err := img.Load(nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func lookup(t *testing.T, s *Snapshot, dir uint64, name string) uint64 {
	t.Helper()
	for _, d := range s.Dirents {
		if d.Dir == dir && d.Name == name {
			return d.Ino
		}
	}
	t.Fatalf("no entry %q in directory %d", name, dir)
	return 0
}

func noEntry(t *testing.T, s *Snapshot, dir uint64, name string) {
	t.Helper()
	for _, d := range s.Dirents {
		if d.Dir == dir && d.Name == name {
			t.Errorf("entry %q of directory %d still names inode %d", name, dir, d.Ino)
		}
	}
}

func noInode(t *testing.T, s *Snapshot, ino uint64) {
	t.Helper()
	if in, ok := s.Inodes[ino]; ok {
		t.Errorf("inode %d still there: %+v", ino, in)
	}
}

func wantNlink(t *testing.T, s *Snapshot, ino uint64, n uint32) {
	t.Helper()
	if got := s.Inodes[ino].Nlink; got != n {
		t.Errorf("inode %d: nlink %d, want %d", ino, got, n)
	}
}

func wantExtents(t *testing.T, s *Snapshot, ino uint64, xs ...Extent) {
	t.Helper()
	if got := s.Extents[ino]; !slices.Equal(got, xs) {
		t.Errorf("inode %d extents %+v, want %+v", ino, got, xs)
	}
}

func wantXattrs(t *testing.T, s *Snapshot, n int) {
	t.Helper()
	if len(s.Xattrs) != n {
		t.Errorf("%d xattrs, want %d: %+v", len(s.Xattrs), n, s.Xattrs)
	}
}

// TestFsckReflink: on an image with the reflink feature written extents of
// two files may share blocks; an unwritten extent sharing one is still an
// error. Without the feature any sharing is.
func TestFsckReflink(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reflink   bool
		unwritten bool
		errors    int
	}{
		{"reflink, written", true, false, 0},
		{"reflink, unwritten", true, true, 1},
		{"no reflink, written", false, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "img")
			var incompat uint64
			if tc.reflink {
				incompat = IncompatReflink
			}
			if _, err := Create(dir, CreateOptions{Blocks: testBlocks, Incompat: incompat}); err != nil {
				t.Fatal(err)
			}
			update(t, dir, func(tx *bbolt.Tx) error {
				for ino := uint64(2); ino <= 3; ino++ {
					putInode(tx, Inode{Ino: ino, Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: 2 * BlockSize})
					putDirent(tx, 1, "f"+utoa(ino), ino)
				}
				putExtent(tx, 2, Extent{Page: 0, Count: 2, Block: 10})
				putExtent(tx, 3, Extent{Page: 0, Count: 2, Block: 10, Unwritten: tc.unwritten})
				return nil
			})
			img := openImage(t, dir, true)
			defer img.Close()
			rep, err := Check(img, CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Count(Error); got != tc.errors {
				t.Fatalf("%d errors, want %d: %v", got, tc.errors, rep.Findings)
			}
		})
	}
}
