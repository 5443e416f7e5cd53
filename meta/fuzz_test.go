package meta

import (
	"bytes"
	"cmp"
	"errors"
	"hash/crc32"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"go.etcd.io/bbolt"
)

// The decoder fuzzers take a record's body and, with seal, append its
// checksum, so that the fuzzer gets past the checksum to the fields. A
// record that decodes must encode back to the same bytes: the format has
// one encoding per value, so a decoder that accepts anything else
// accepted garbage. Every error wraps EUCLEAN (or, for a superblock,
// EOPNOTSUPP) and names the record.

func FuzzDecodeSuperblock(f *testing.F) {
	sb, err := NewSuperblock(1<<20, IncompatDataChecksums, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sb.Encode(), false)
	f.Add(sb.Encode()[:superblockSize], true)
	f.Add([]byte("holefs"), true)
	f.Fuzz(func(t *testing.T, b []byte, reseal bool) {
		if reseal && len(b) >= superblockSize {
			b = bytes.Clone(b)
			be.PutUint32(b[72:], crc32.Checksum(b[:72], castagnoli))
		}
		sb, err := DecodeSuperblock(b)
		if err != nil {
			if !errors.Is(err, syscall.EUCLEAN) && !errors.Is(err, syscall.EOPNOTSUPP) || !strings.HasPrefix(err.Error(), "superblock: ") {
				t.Fatalf("error %q: not EUCLEAN or EOPNOTSUPP naming the superblock", err)
			}
			return
		}
		if got := sb.Encode()[:superblockSize]; !bytes.Equal(got, b[:superblockSize]) {
			t.Fatalf("decoded %+v from %x, which encodes as %x", sb, b[:superblockSize], got)
		}
		if sb.Blocks < 2 || sb.Blocks > maxBlocks || sb.BlockSize != BlockSize || sb.Version != Version {
			t.Fatalf("accepted %+v", sb)
		}
	})
}

func FuzzDecodeInode(f *testing.F) {
	for _, in := range []Inode{
		{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Mtime: 1},
		{Ino: 3, Mode: syscall.S_IFREG | 0o644, UID: 1000, GID: 100, Nlink: 1, Size: 12345, Atime: -1, Mtime: 2, Ctime: 3},
		{Ino: 1 << 40, Mode: syscall.S_IFLNK | 0o777, Nlink: 1, Target: "../a/b"},
		{Ino: 4, Mode: syscall.S_IFCHR | 0o666, Nlink: 1, Rdev: 1<<8 | 3},
		{Ino: 5, Mode: syscall.S_IFIFO | 0o600, Nlink: 2},
		{Ino: 6, Mode: syscall.S_IFREG | 0o600, Nlink: 1, Size: 1 << 30, IBlock: [NRoots]uint32{1: 7, 12: 9, 14: 1 << 31}},
	} {
		k, v := encodeInode(in)
		f.Add(k, v[:len(v)-4], true)
		f.Add(k, v, false)
	}
	f.Fuzz(func(t *testing.T, key, body []byte, seal bool) {
		value := body
		if seal {
			value = sealed(key, body)
		}
		in, err := DecodeInode(key, value)
		if err != nil {
			wantCorrupt(t, err, "inode")
			return
		}
		if k, v := encodeInode(in); !bytes.Equal(k, key) || !bytes.Equal(v, value) {
			t.Fatalf("decoded %+v from %x=%x, which encodes as %x=%x", in, key, value, k, v)
		}
		if in.Ino == 0 || in.Size < 0 || in.Size > MaxFileSize || (in.Mode&syscall.S_IFMT == modeLink) != (in.Target != "") ||
			(in.IBlock != [NRoots]uint32{} && in.Mode&syscall.S_IFMT != modeReg) {
			t.Fatalf("accepted %+v", in)
		}
	})
}

func FuzzDecodeDirent(f *testing.F) {
	for _, d := range []Dirent{{1, "a", 2}, {2, strings.Repeat("x", MaxNameLen), 1 << 50}, {7, "é", 8}} {
		k, v := encodeDirent(d.Dir, d.Name, d.Ino)
		f.Add(k, v[:len(v)-4], true)
		f.Add(k, v, false)
	}
	f.Fuzz(func(t *testing.T, key, body []byte, seal bool) {
		value := body
		if seal {
			value = sealed(key, body)
		}
		d, err := DecodeDirent(key, value)
		if err != nil {
			wantCorrupt(t, err, "dirent")
			return
		}
		if k, v := encodeDirent(d.Dir, d.Name, d.Ino); !bytes.Equal(k, key) || !bytes.Equal(v, value) {
			t.Fatalf("decoded %+v from %x=%x, which encodes as %x=%x", d, key, value, k, v)
		}
		if d.Dir == 0 || d.Ino == 0 || CheckName(d.Name) != nil {
			t.Fatalf("accepted %+v", d)
		}
	})
}

func FuzzDecodeExtent(f *testing.F) {
	for _, x := range []Extent{{0, 1, 1, false}, {5, 100, 900, true}, {maxPages - 1, 1, 999, false}} {
		k, v := encodeExtent(3, x)
		f.Add(k, v[:len(v)-4], true, int64(1000))
		f.Add(k, v, false, int64(1000))
	}
	f.Fuzz(func(t *testing.T, key, body []byte, seal bool, nblocks int64) {
		value := body
		if seal {
			value = sealed(key, body)
		}
		ino, x, err := DecodeExtent(key, value, nblocks)
		if err != nil {
			wantCorrupt(t, err, "extent")
			return
		}
		if k, v := encodeExtent(ino, x); !bytes.Equal(k, key) || !bytes.Equal(v, value) {
			t.Fatalf("decoded %d %+v from %x=%x, which encodes as %x=%x", ino, x, key, value, k, v)
		}
		if ino == 0 || x.Page < 0 || x.Count <= 0 || x.Page+x.Count > maxPages || x.Block < 1 || x.Block+x.Count > nblocks {
			t.Fatalf("accepted inode %d extent %+v on a device of %d blocks", ino, x, nblocks)
		}
	})
}

func FuzzDecodeXattr(f *testing.F) {
	k := xattrKey(3, "user.mime")
	f.Add(k, []byte("text/plain"), true)
	f.Add(k, sealed(k, nil), false)
	f.Fuzz(func(t *testing.T, key, body []byte, seal bool) {
		value := body
		if seal {
			value = sealed(key, body)
		}
		x, err := DecodeXattr(key, value)
		if err != nil {
			wantCorrupt(t, err, "xattr")
			return
		}
		if k := xattrKey(x.Ino, x.Name); !bytes.Equal(k, key) || !bytes.Equal(sealed(k, x.Value), value) {
			t.Fatalf("decoded %+v from %x=%x", x, key, value)
		}
		if x.Ino == 0 || x.Name == "" {
			t.Fatalf("accepted %+v", x)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	v := encodeState(state{Seq: 7, Owned: 100, Inodes: 3})
	f.Add(v[:len(v)-4], true)
	f.Add(v, false)
	f.Fuzz(func(t *testing.T, body []byte, seal bool) {
		value := body
		if seal {
			value = sealed([]byte(keyState), body)
		}
		s, err := decodeState(value)
		if err != nil {
			wantCorrupt(t, err, "state record")
			return
		}
		if v := encodeState(s); !bytes.Equal(v, value) {
			t.Fatalf("decoded %+v from %x, which encodes as %x", s, value, v)
		}
		if s.Owned < 0 || s.Inodes < 0 {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func wantCorrupt(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), what) {
		t.Fatalf("error %q: not EUCLEAN naming the %s", err, what)
	}
}

// FuzzFsck damages a small healthy image as a program of the fuzzer's
// bytes says (overwrite, resize, delete, rename or add records, with or
// without a valid checksum; overwrite the superblocks; truncate the data
// file), then checks what fsck does with it: Open fails only with
// EUCLEAN or EOPNOTSUPP; Precheck repairs the superblocks when one copy
// is valid; Check and Repair report the same findings; Repair fixes every
// error; after it Check finds nothing left to fix, the records all
// decode, and they fit together as a mount needs.
func FuzzFsck(f *testing.F) {
	template := testImage(f)
	recs := records(f, template)
	for _, prog := range [][]byte{
		nil,
		{opOverwrite, 3, 0, 1, 0xff, 0},                          // damage a checksum
		{opOverwrite, 9, 12, 0, 2, 1},                            // change a field, resealed
		{opResize, 5, 20, 1},                                     // shorten a record, resealed
		{opDelete, 0, opDelete, 1, opDelete, 4},                  // delete records
		{opRename, 6, 3, 9, 1},                                   // move a record to another key
		{opRaw, 1, 7, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1},              // add a record
		{opRecord, 2, 5, 3, 1, 10, 0},                            // an extent sharing blocks
		{opRecord, 1, 2, 3, 1, opRecord, 1, 1, 4, 2},             // a cycle, a hard-linked directory
		{opRecord, 0, 9, 2, 0, opRecord, 1, 9, 1, 1},             // an unreachable directory naming the root
		{opData, 0, 20, 0xff, 0},                                 // damage block 0
		{opData, 0, 60, 0xff, 1},                                 // an unknown feature, resealed
		{opMetaSB, 0, 30, 1, 0},                                  // damage the copy
		{opTruncate, 3},                                          // truncate the data file
		{opState, 0},                                             // reseal the state record
		{opRecord, 0, 3, 1, 0, opState, 0},                       // 3 becomes a directory
		{opRecord, 2, 0, 0, 1, 5, 0, opRecord, 2, 7, 1, 2, 6, 0}, // extents of inode 0 and of a missing inode
		{opBucket, 0, 1, 's', 'b'},                               // a bucket for the superblock copy
		{opBucket, 0, 4, 's', 't', 'a', 't', 'e', opBucket, 2, 8, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, // buckets for the state record and an entry
	} {
		f.Add(prog)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		dir := filepath.Join(t.TempDir(), "img")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{DataFile, MetaFile} {
			copyFile(t, filepath.Join(template, name), filepath.Join(dir, name))
		}
		mutate(t, dir, recs, prog)
		checkDamaged(t, dir)
	})
}

// recKey names a record of meta.db.
type recKey struct{ bucket, key string }

// records lists the records of an image, in a fixed order.
func records(t testing.TB, dir string) []recKey {
	var recs []recKey
	db, err := bbolt.Open(filepath.Join(dir, MetaFile), 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must(db.View(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			tx.Bucket([]byte(b)).ForEach(func(k, _ []byte) error {
				recs = append(recs, recKey{b, string(k)})
				return nil
			})
		}
		return nil
	}))
	return recs
}

// The operations of a damage program: an op byte, a selector byte (the
// record an op works on, or its first parameter), then the op's bytes.
const (
	opOverwrite = iota // record; offset, length, bytes..., reseal: overwrite bytes of a value
	opResize           // record; length, reseal: cut or zero-extend a value
	opDelete           // record
	opRename           // record; index, byte, reseal: move a value to a changed key
	opRaw              // bucket; key length, key..., value length, value..., seal: add raw bytes
	opRecord           // kind; fields...: add a valid record of small inode numbers
	opData             // -; offset, byte, reseal: overwrite a byte of block 0
	opMetaSB           // -; offset, byte, reseal: overwrite a byte of meta.db's copy
	opTruncate         // blocks: truncate the data file
	opState            // -: rewrite the state record from the records
	opBucket           // bucket; key length, key...: a nested bucket where a record belongs
	numOps
)

// reader hands out a program's bytes, then zeros.
type reader []byte

func (r *reader) next() byte {
	if len(*r) == 0 {
		return 0
	}
	b := (*r)[0]
	*r = (*r)[1:]
	return b
}

func (r *reader) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = r.next()
	}
	return b
}

func mutate(t *testing.T, dir string, recs []recKey, prog []byte) {
	r := reader(prog)
	var data []func()
	raw(t, dir, func(tx *bbolt.Tx) error {
		for steps := 0; len(r) > 0 && steps < 64; steps++ {
			op, sel := r.next()%numOps, r.next()
			rec := recs[int(sel)%len(recs)]
			b, key := tx.Bucket([]byte(rec.bucket)), []byte(rec.key)
			v := bytes.Clone(b.Get(key))
			switch op {
			case opOverwrite:
				if len(v) == 0 {
					continue
				}
				off := int(r.next()) % len(v)
				copy(v[off:], r.bytes(1+int(r.next())%4))
				put(b, key, reseal(rec, v, r.next()&1 != 0))
			case opResize:
				n := int(r.next()) % 40
				v = append(v, make([]byte, max(0, n-len(v)))...)[:n]
				put(b, key, reseal(rec, v, r.next()&1 != 0))
			case opDelete:
				must(deleteKey(b, key))
			case opRename:
				k2 := bytes.Clone(key)
				k2[int(r.next())%len(k2)] = r.next()
				must(deleteKey(b, key))
				put(b, k2, reseal(recKey{rec.bucket, string(k2)}, v, r.next()&1 != 0))
			case opRaw:
				b = tx.Bucket([]byte(buckets[int(sel)%len(buckets)]))
				k := r.bytes(1 + int(r.next())%20)
				v := r.bytes(int(r.next()) % 30)
				if r.next()&1 != 0 {
					v = sealed(k, v)
				}
				put(b, k, v)
			case opRecord:
				addRecord(tx, sel, &r)
			case opData, opMetaSB:
				off, val, fix := int(r.next())%superblockSize, r.next(), r.next()&1 != 0
				if op == opMetaSB {
					sup := tx.Bucket([]byte(bucketSuper))
					sb := bytes.Clone(sup.Get([]byte(keySB)))
					if len(sb) < superblockSize {
						continue
					}
					sb[off] = val
					put(sup, []byte(keySB), resealSB(sb, fix))
					continue
				}
				data = append(data, func() {
					sb := make([]byte, superblockSize)
					f, err := os.OpenFile(filepath.Join(dir, DataFile), os.O_RDWR, 0)
					must(err)
					defer f.Close()
					f.ReadAt(sb, 0)
					sb[off] = val
					_, err = f.WriteAt(resealSB(sb, fix), 0)
					must(err)
				})
			case opTruncate:
				n := int64(sel) % (testBlocks + 8)
				data = append(data, func() { must(truncate(dir, n*BlockSize)) })
			case opState:
				resealState(tx)
			case opBucket:
				b = tx.Bucket([]byte(buckets[int(sel)%len(buckets)]))
				k := r.bytes(1 + int(r.next())%16)
				if b.Get(k) != nil {
					must(b.Delete(k))
				}
				_, err := b.CreateBucketIfNotExists(k)
				must(err)
			}
		}
		return nil
	})
	for _, fn := range data {
		fn()
	}
}

// reseal recomputes a value's checksum, if asked to.
func reseal(rec recKey, v []byte, fix bool) []byte {
	if !fix || len(v) < 4 {
		return v
	}
	if rec.bucket == bucketSuper && rec.key == keySB {
		return resealSB(v, true)
	}
	return sealed([]byte(rec.key), v[:len(v)-4])
}

func resealSB(sb []byte, fix bool) []byte {
	if fix && len(sb) >= superblockSize {
		be.PutUint32(sb[72:], crc32.Checksum(sb[:72], castagnoli))
	}
	return sb
}

// addRecord adds a well-formed record of inode numbers below 16, so that
// the fuzzer quickly builds namespaces and block maps that do not fit
// together.
func addRecord(tx *bbolt.Tx, kind byte, r *reader) {
	ino := func() uint64 { return uint64(r.next() % 16) }
	switch kind % 4 {
	case 0:
		in := Inode{Ino: ino(), Nlink: uint32(r.next() % 4)}
		switch r.next() % 3 {
		case 0:
			in.Mode = syscall.S_IFDIR | 0o755
		case 1:
			in.Mode, in.Size = syscall.S_IFREG|0o644, int64(r.next())*1000
		case 2:
			in.Mode, in.Target = syscall.S_IFLNK|0o777, "t"
		}
		putInode(tx, in)
	case 1:
		dir, name := ino(), string(rune('a'+r.next()%8))
		putDirent(tx, dir, name, ino())
	case 2:
		n := ino()
		putExtent(tx, n, Extent{Page: int64(r.next() % 8), Count: 1 + int64(r.next()%4), Block: int64(r.next() % (testBlocks + 6)), Unwritten: r.next()&1 != 0})
	case 3:
		putXattr(tx, ino(), "user."+string(rune('a'+r.next()%4)), r.bytes(int(r.next()%8)))
	}
}

// checkDamaged runs fsck on a damaged image and checks what it does.
func checkDamaged(t *testing.T, dir string) {
	img, err := Open(dir, OpenOptions{ReadOnly: true})
	if err != nil {
		if !errors.Is(err, syscall.EUCLEAN) && !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Fatalf("Open: %v: neither EUCLEAN nor EOPNOTSUPP", err)
		}
		found, err := Precheck(dir, true)
		if err != nil {
			// EFBIG: a valid copy says the image is larger than the
			// filesystem holding it can be.
			if !errors.Is(err, syscall.EUCLEAN) && !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.EFBIG) {
				t.Fatalf("Precheck: %v: neither EUCLEAN, EOPNOTSUPP nor EFBIG", err)
			}
			return
		}
		fixed := !slices.ContainsFunc(found, func(f Finding) bool { return !f.Fixed })
		img, err = Open(dir, OpenOptions{ReadOnly: true})
		if fixed != (err == nil) {
			t.Fatalf("Open after Precheck fixed %v: %v (found %+v)", fixed, err, found)
		}
		if err != nil {
			return
		}
	}
	rep, err := Check(img, CheckOptions{})
	img.Close()
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	img, err = Open(dir, OpenOptions{})
	if err != nil {
		t.Fatalf("Open for Repair: %v", err)
	}
	defer img.Close()
	fixed, err := Repair(img, CheckOptions{})
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if !sameFindings(rep, fixed) {
		t.Fatalf("Repair found\n%s\nCheck found\n%s", findings(fixed), findings(rep))
	}
	if _, left := fixed.Errors(); left > 0 {
		t.Fatalf("Repair left %d errors:\n%s", left, findings(fixed))
	}
	again, err := Check(img, CheckOptions{})
	if err != nil {
		t.Fatalf("Check after Repair: %v", err)
	}
	if again.Count(Error) > 0 || hasFix(again) {
		t.Fatalf("Check after Repair found\n%s\nRepair found\n%s", findings(again), findings(fixed))
	}
	s, err := img.Load(nil)
	if err != nil {
		t.Fatalf("Load after Repair: %v", err)
	}
	if err := fits(s, img.SB.Blocks); err != "" {
		t.Fatalf("after Repair, Check is clean but %s; Repair found\n%s", err, findings(fixed))
	}
}

// fits checks, independently of fsck, what a mount needs of the records:
// a root directory, entries of directories naming inodes that exist,
// extents of regular files within the device, each block owned once,
// and the state record's counts.
func fits(s *Snapshot, nblocks int64) string {
	if !isDir(s.Inodes[RootIno]) {
		return "the root is not a directory"
	}
	for _, d := range s.Dirents {
		if !isDir(s.Inodes[d.Dir]) {
			return "an entry of a non-directory"
		}
		if _, ok := s.Inodes[d.Ino]; !ok {
			return "an entry names a missing inode"
		}
	}
	type run struct{ start, end int64 }
	var runs []run
	owned := int64(0)
	for ino, xs := range s.Extents {
		if !isFile(s.Inodes[ino]) {
			return "extents of a non-file"
		}
		for i, x := range xs {
			if i > 0 && xs[i-1].Page+xs[i-1].Count > x.Page {
				return "extents of a file overlap"
			}
			runs = append(runs, run{x.Block, x.Block + x.Count})
			owned += x.Count
		}
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(runs); i++ {
		if runs[i].start < runs[i-1].end {
			return "a block is owned twice"
		}
	}
	if s.Owned != owned || s.NInodes != int64(len(s.Inodes)) {
		return "the state record's counts are wrong"
	}
	return ""
}

// FuzzStorePages damages meta.db's raw pages, below bbolt: prog is a list
// of (offset, xor) triples, the offset (big-endian u16, wrapped to the
// file) mostly in the first pages where the meta pages and the bucket
// roots are. With reseal the meta pages' checksums are recomputed, so
// that damaged root, freelist and high-water fields reach the checks
// behind them. Open, fsck and Repair must never panic or crash; an Open
// that fails says EUCLEAN in one bounded line; an image Open accepts is
// one Check and Repair run on.
func FuzzStorePages(f *testing.F) {
	template := testImage(f)
	ps := os.Getpagesize()
	for _, seed := range []struct {
		prog   []byte
		reseal bool
	}{
		{nil, false},
		{[]byte{0, 16 + 16, 0x01}, true},                 // meta 0's root page id
		{[]byte{0, 16 + 40, 0x10}, true},                 // meta 0's high-water mark
		{[]byte{0, 16 + 32, 0x01}, true},                 // meta 0's freelist page id
		{[]byte{byte(ps >> 8), 16 + 48, 0x02}, false},    // meta 1's txid, unsealed
		{[]byte{byte(2 * ps >> 8), 8, 0x03}, false},      // page 2's flags
		{[]byte{byte(2 * ps >> 8), 10, 0x40}, false},     // page 2's element count
		{[]byte{byte(3 * ps >> 8), 16 + 4, 0x7f}, false}, // page 3's first element position
		{[]byte{byte(3 * ps >> 8), 16 + 12, 0xff}, false},
		{[]byte{byte(4 * ps >> 8), 0, 0x01}, false}, // page 4's id
	} {
		f.Add(seed.prog, seed.reseal)
	}
	orig, err := os.ReadFile(filepath.Join(template, MetaFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, prog []byte, reseal bool) {
		dir := filepath.Join(t.TempDir(), "img")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(template, DataFile), filepath.Join(dir, DataFile))
		b := bytes.Clone(orig)
		for ; len(prog) >= 3; prog = prog[3:] {
			b[int(be.Uint16(prog))%len(b)] ^= prog[2]
		}
		if reseal {
			for _, off := range []int{0, ps} {
				h := b[off+pageHeader:]
				sum := fnv.New64a()
				sum.Write(h[:metaSumLen])
				ne.PutUint64(h[metaSumLen:], sum.Sum64())
			}
		}
		if err := os.WriteFile(filepath.Join(dir, MetaFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, readOnly := range []bool{true, false} {
			img, err := Open(dir, OpenOptions{ReadOnly: readOnly, AcceptRollback: true})
			if err != nil {
				if !errors.Is(err, syscall.EUCLEAN) {
					t.Fatalf("Open: %v: not EUCLEAN", err)
				}
				if msg := err.Error(); len(msg) > 1024 || strings.Contains(msg, "\n") {
					t.Fatalf("Open: an error of %d bytes, not one bounded line: %.200q", len(msg), msg)
				}
				if _, err := Precheck(dir, false); err != nil && !errors.Is(err, syscall.EUCLEAN) {
					t.Fatalf("Precheck: %v: not EUCLEAN", err)
				}
				return
			}
			check := Check
			if !readOnly {
				check = Repair
			}
			rep, err := check(img, CheckOptions{})
			img.Close()
			if err != nil && !errors.Is(err, syscall.EUCLEAN) && !errors.Is(err, syscall.EIO) {
				t.Fatalf("fsck: %v", err)
			}
			if rep != nil {
				for _, f := range rep.Findings {
					if msg := f.String(); len(msg) > 1024 || strings.Contains(msg, "\n") {
						t.Fatalf("a finding of %d bytes, not one bounded line: %.200q", len(msg), msg)
					}
				}
			}
		}
	})
}
