package meta

import (
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// metaBytes returns the image's meta.db and its page size.
func metaBytes(t *testing.T, dir string) ([]byte, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	return b, os.Getpagesize()
}

func writeMetaBytes(t *testing.T, dir string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, MetaFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// resealMeta recomputes the checksum of the meta page at off.
func resealMeta(b []byte, off int) {
	h := b[off+pageHeader:]
	sum := fnv.New64a()
	sum.Write(h[:metaSumLen])
	ne.PutUint64(h[metaSumLen:], sum.Sum64())
}

// TestCheckStore damages meta.db's pages in ways bbolt would crash,
// panic or loop on, and checks that Open and Precheck refuse each with
// an EUCLEAN error naming the page and the fault, in one bounded line.
func TestCheckStore(t *testing.T) {
	tests := []struct {
		name   string
		damage func(b []byte, ps int, s *storeInfo) []byte
		want   string
	}{
		{"root page out of range", func(b []byte, ps int, s *storeInfo) []byte {
			off := s.active * ps
			ne.PutUint64(b[off+pageHeader+16:], 1<<40)
			resealMeta(b, off)
			return b
		}, "root page 1099511627776 outside [2, "},
		{"high-water mark past the file", func(b []byte, ps int, s *storeInfo) []byte {
			off := s.active * ps
			ne.PutUint64(b[off+pageHeader+40:], uint64(s.pages+1))
			resealMeta(b, off)
			return b
		}, "high-water mark"},
		{"root page of the wrong type", func(b []byte, ps int, s *storeInfo) []byte {
			ne.PutUint16(b[rootOff(b, ps, s)+8:], flagMeta)
			return b
		}, "type 0x4 where a branch or leaf page belongs"},
		{"root page's id", func(b []byte, ps int, s *storeInfo) []byte {
			ne.PutUint64(b[rootOff(b, ps, s):], 99)
			return b
		}, "header says page 99"},
		{"too many elements", func(b []byte, ps int, s *storeInfo) []byte {
			ne.PutUint16(b[rootOff(b, ps, s)+10:], 0xffff)
			return b
		}, "65535 elements do not fit a page of 4096 bytes"},
		{"key outside the page", func(b []byte, ps int, s *storeInfo) []byte {
			ne.PutUint32(b[rootOff(b, ps, s)+pageHeader+4:], 1<<31)
			return b
		}, "element 0: key of"},
		{"unknown element flags", func(b []byte, ps int, s *storeInfo) []byte {
			ne.PutUint32(b[rootOff(b, ps, s)+pageHeader:], 0x05)
			return b
		}, "element 0: unknown flags 0x5"},
		{"bucket sharing the root page", func(b []byte, ps int, s *storeInfo) []byte {
			// The first bucket's value: its root page id becomes the
			// root page itself, a cycle.
			r := rootOff(b, ps, s)
			e := r + pageHeader
			pos, ksize := int(ne.Uint32(b[e+4:])), int(ne.Uint32(b[e+8:]))
			ne.PutUint64(b[e+pos+ksize:], s.metas[s.active].root)
			return b
		}, "reached twice"},
		{"keys out of order", func(b []byte, ps int, s *storeInfo) []byte {
			// The root leaf's first key ("csums", "dirents", ...) made
			// larger than the second.
			r := rootOff(b, ps, s)
			e := r + pageHeader
			b[e+int(ne.Uint32(b[e+4:]))] = 0xff
			return b
		}, "not above the previous key"},
		{"truncated", func(b []byte, ps int, s *storeInfo) []byte {
			return b[:3*ps]
		}, "high-water mark"},
		{"empty", func(b []byte, ps int, s *storeInfo) []byte {
			return nil
		}, "0 bytes, too short to hold its meta pages"},
		{"both meta pages", func(b []byte, ps int, s *storeInfo) []byte {
			b[pageHeader] ^= 1
			b[ps+pageHeader] ^= 1
			return b
		}, "both meta pages are damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testImage(t)
			s, err := checkStore(filepath.Join(dir, MetaFile))
			if err != nil {
				t.Fatalf("the undamaged image: %v", err)
			}
			b, ps := metaBytes(t, dir)
			writeMetaBytes(t, dir, tt.damage(b, ps, s))
			for _, readOnly := range []bool{true, false} {
				_, err := Open(dir, OpenOptions{ReadOnly: readOnly})
				if !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir+": meta.db") {
					t.Fatalf("Open(read-only %v): %v; want EUCLEAN naming the image and %q", readOnly, err, tt.want)
				}
				if msg := err.Error(); len(msg) > 300 || strings.Contains(msg, "\n") {
					t.Errorf("error of %d bytes, not one short line: %q", len(msg), msg)
				}
			}
			found, err := Precheck(dir, true)
			if err != nil || len(found) != 1 || found[0].Kind != KindStore || found[0].Fixed || !strings.Contains(found[0].Problem, tt.want) {
				t.Fatalf("Precheck: %+v, %v; want one unfixed %s finding saying %q", found, err, KindStore, tt.want)
			}
		})
	}
}

// rootOff returns the offset in meta.db of the active meta page's root
// page.
func rootOff(_ []byte, ps int, s *storeInfo) int { return int(s.metas[s.active].root) * ps }

// commitRecordWriter writes block 0 of the image's data file, as a
// device would (without the flush, which Sync adds).
func commitRecordWriter(t *testing.T, dir string) func(p []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, DataFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return func(p []byte) error {
		_, err := f.WriteAt(p, 0)
		return err
	}
}

// commitN opens the image, makes n commits (each creating an inode) and
// closes it.
func commitN(t *testing.T, dir string, first uint64, n int) {
	t.Helper()
	img := openImage(t, dir, false)
	j := img.Journal(JournalOptions{Interval: -1, WriteBlock0: commitRecordWriter(t, dir)})
	for i := range n {
		j.PutInode(Static{Ino: first + uint64(i), Mode: syscall.S_IFREG | 0o644})
		if err := j.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRollback: a meta.db older than block 0's commit record, or whose
// newer meta page is damaged, is refused read-write (naming both
// commits), reported by a read-only open and fsck, and accepted only on
// request; a commit that did not complete (the record one ahead, both
// meta pages intact), a damaged older meta page and a damaged record are
// no rollback.
func TestRollback(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir string, s *storeInfo, old []byte)
		rollback string // "" if none
		finding  Kind   // what Check reports when it is no rollback; "" if nothing
	}{
		{"newer meta page damaged", func(t *testing.T, dir string, s *storeInfo, _ []byte) {
			b, ps := metaBytes(t, dir)
			b[s.active*ps+pageHeader+48] ^= 0x02 // its txid: the damaged page now reads older
			writeMetaBytes(t, dir, b)
		}, "rolled back from commit 4 to 3: data fsynced since is lost (meta page", ""},
		{"meta.db two commits old", func(t *testing.T, dir string, _ *storeInfo, old []byte) {
			writeMetaBytes(t, dir, old)
		}, "rolled back from commit 4 to 2: data fsynced since is lost (block 0 records commit 4)", ""},
		{"crash before the commit", func(t *testing.T, dir string, _ *storeInfo, _ []byte) {
			img := openImage(t, dir, true)
			sb := img.SB
			img.Close()
			patchData(t, dir, 0, sb.block0(5)...)
		}, "", ""},
		{"older meta page damaged", func(t *testing.T, dir string, s *storeInfo, _ []byte) {
			b, ps := metaBytes(t, dir)
			b[(1-s.active)*ps+pageHeader+60] ^= 0x10
			writeMetaBytes(t, dir, b)
		}, "", KindStore},
		{"commit record damaged", func(t *testing.T, dir string, _ *storeInfo, _ []byte) {
			patchData(t, dir, commitRecordOff+9, 0x77)
		}, "", KindCommitSeq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newImage(t) // commit 1
			commitN(t, dir, 10, 1)
			old, _ := metaBytes(t, dir) // commit 2
			commitN(t, dir, 20, 2)      // commits 3 and 4
			s, err := checkStore(filepath.Join(dir, MetaFile))
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir, s, old)

			rw, err := Open(dir, OpenOptions{})
			var rbe *RollbackError
			if tt.rollback == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				rw.Close()
			} else if !errors.As(err, &rbe) || !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), tt.rollback) {
				t.Fatalf("Open: %v; want a RollbackError saying %q", err, tt.rollback)
			}
			img := openImage(t, dir, true)
			rb, ok := img.Rollback()
			if ok != (tt.rollback != "") || ok && !strings.Contains(rb.String(), tt.rollback) {
				t.Fatalf("read-only Open: Rollback() = %v, %v; want %q", rb, ok, tt.rollback)
			}
			rep, err := Check(img, CheckOptions{})
			img.Close()
			if err != nil {
				t.Fatal(err)
			}
			want := tt.finding
			if tt.rollback != "" {
				want = KindRollback
			}
			var kinds []Kind
			for _, f := range rep.Findings {
				if f.Severity != Info { // the inodes made have no links: orphans
					kinds = append(kinds, f.Kind)
				}
			}
			if want == "" && len(kinds) > 0 || want != "" && (len(kinds) != 1 || kinds[0] != want) {
				t.Fatalf("Check found %v; want %q: %+v", kinds, want, rep.Findings)
			}

			if tt.rollback != "" {
				img, err := Open(dir, OpenOptions{AcceptRollback: true})
				if err != nil {
					t.Fatalf("Open accepting the rollback: %v", err)
				}
				if rb, ok := img.Rollback(); !ok || !rb.Accepted {
					t.Fatalf("Rollback() = %v, %v after accepting it", rb, ok)
				}
				img.Close()
			}
			if want != "" && tt.rollback == "" {
				img := openImage(t, dir, false)
				rep, err := Repair(img, CheckOptions{})
				img.Close()
				if err != nil || !rep.Repaired {
					t.Fatalf("Repair: %+v, %v", rep, err)
				}
			}
			// Accepted or repaired: clean, and commits go on.
			img = openImage(t, dir, true)
			rep, err = Check(img, CheckOptions{})
			img.Close()
			if err != nil || rep.Count(Error) > 0 {
				t.Fatalf("Check after: %+v, %v", rep.Findings, err)
			}
			commitN(t, dir, 30, 1)
			img = openImage(t, dir, false)
			if _, ok := img.Rollback(); ok {
				t.Fatal("a rollback after a commit on the accepted state")
			}
		})
	}
}

// BenchmarkCommit measures what an fsync of a 4 KiB write costs an
// image: the data write, then a commit of the file's inode with its data
// flush (fdatasync of the data file), with and without writing the commit
// record ahead of the flush: the record's whole cost is one more 4 KiB
// write that flush covers.
func BenchmarkCommit(b *testing.B) {
	for _, record := range []bool{false, true} {
		b.Run(map[bool]string{false: "no-record", true: "record"}[record], func(b *testing.B) {
			dir := newImage(b)
			img := openImage(b, dir, false)
			data, err := os.OpenFile(filepath.Join(dir, DataFile), os.O_RDWR, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer data.Close()
			opts := JournalOptions{Interval: -1, Flush: func() error { return syscall.Fdatasync(int(data.Fd())) }}
			if record {
				opts.WriteBlock0 = func(p []byte) error { _, err := data.WriteAt(p, 0); return err }
			}
			j := img.Journal(opts)
			defer j.Close()
			block := make([]byte, BlockSize)
			for i := 0; b.Loop(); i++ {
				if _, err := data.WriteAt(block, int64(1+i%(testBlocks-1))*BlockSize); err != nil {
					b.Fatal(err)
				}
				j.PutInode(Static{Ino: 2 + uint64(i%64), Mode: syscall.S_IFREG | 0o644, Nlink: 1})
				if err := j.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSafely: a panic in a bbolt call becomes an EUCLEAN error of one
// bounded line.
func TestSafely(t *testing.T) {
	err := safely("read", func() error { panic(strings.Repeat("x\n", 1<<20)) })
	if !errors.Is(err, syscall.EUCLEAN) || !strings.HasPrefix(err.Error(), "meta.db: read: bbolt panicked: x x") || strings.Contains(err.Error(), "\n") || len(err.Error()) > 700 {
		t.Fatalf("safely: %.100q (%d bytes); want EUCLEAN, bounded", err, len(err.Error()))
	}
	if err := safely("read", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackSurvivesSuperblockRepair: repairing a damaged superblock in
// block 0 keeps the commit record beside it, the one witness of a
// meta.db that went back two commits; writing meta.db's own sequence
// there would accept the rollback silently.
func TestRollbackSurvivesSuperblockRepair(t *testing.T) {
	dir := newImage(t) // commit 1
	commitN(t, dir, 10, 1)
	old, _ := metaBytes(t, dir) // commit 2
	commitN(t, dir, 20, 2)      // commits 3 and 4
	writeMetaBytes(t, dir, old)
	patchData(t, dir, 20, 0xee) // the superblock's UUID: its checksum fails
	if _, err := Precheck(dir, true); err != nil {
		t.Fatalf("Precheck --repair: %v", err)
	}
	_, err := Open(dir, OpenOptions{})
	var rbe *RollbackError
	if !errors.As(err, &rbe) || !strings.Contains(err.Error(), "rolled back from commit 4 to 2") {
		t.Fatalf("Open after the superblock's repair: %v; want the rollback from commit 4 to 2", err)
	}
}
