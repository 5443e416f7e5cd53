package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// This file checks meta.db's page structure from the raw file, read-only,
// before bbolt maps it. bbolt trusts its pages: a flipped page type, page
// id, element count or key offset makes it read outside its map (SIGSEGV,
// SIGBUS), panic (sometimes in a goroutine of its own, where a caller
// cannot recover), allocate what a corrupt length says, or build an error
// quoting a key of hundreds of megabytes. An image whose pages pass this
// check is one bbolt can read without any of that; every violation is an
// EUCLEAN error naming the page.
//
// The layout read here is bbolt's (go.etcd.io/bbolt, internal/common),
// in the machine's byte order, as bbolt writes it:
//
//	page header   id u64, flags u16, count u16, overflow u32 (16 bytes)
//	meta          magic u32, version u32, page size u32, flags u32,
//	              root bucket (root pgid u64, sequence u64), freelist pgid,
//	              high-water pgid, txid, FNV-1a 64 checksum of what precedes
//	branch elem   pos u32, ksize u32, child pgid u64; key at elem+pos
//	leaf elem     flags u32, pos u32, ksize u32, vsize u32; key, value at elem+pos
//	bucket value  root pgid u64, sequence u64, then, when root is 0, an
//	              inline leaf page holding the bucket's records
//	freelist      count page ids (count 0xFFFF: the first u64 is the count)

const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltNoFreelist = ^uint64(0)

	pageHeader   = 16
	elemSize     = 16 // branch and leaf elements are both 16 bytes
	bucketHeader = 16
	metaSumLen   = 56 // the meta bytes the checksum covers

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10

	leafBucket = 0x01

	// maxSpan bounds a page with its overflow pages, which checkStore
	// reads whole: holefs's largest record (an xattr value of 64 KiB)
	// needs a few pages, and a damaged overflow count must not make the
	// check allocate what it says.
	maxSpan = 16 << 20

	// maxDepth bounds the tree walk. bbolt's trees of a few million
	// records are 4 or 5 levels deep; nested buckets add one tree each.
	maxDepth = 64
)

var ne = binary.NativeEndian

// boltMeta is a decoded meta page.
type boltMeta struct {
	index    int // 0 or 1: the page it is on
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // pages in use: every page id is below it
	txid     uint64
	err      error // why bbolt would not use it; nil if it would
}

// storeInfo is what checkStore learned of meta.db.
type storeInfo struct {
	metas  [2]boltMeta
	active int // the meta page bbolt uses: the valid one with the higher txid
	pages  int64
}

// other returns the meta page bbolt does not use.
func (s *storeInfo) other() *boltMeta { return &s.metas[1-s.active] }

// fellBack reports whether bbolt would fall back to the older meta page:
// the other page is damaged and, as far as its txid can still be read,
// was the newer one (an older page damaged is harmless: the next commit
// overwrites it).
func (s *storeInfo) fellBack() bool {
	o := s.other()
	return o.err != nil && o.txid != s.metas[s.active].txid-1
}

// storeErr is a damaged page of meta.db.
func storeErr(pgid uint64, format string, args ...any) error {
	return corrupt("%s page %d: %s", MetaFile, pgid, fmt.Sprintf(format, args...))
}

// checkStore validates meta.db at path as bbolt will read it: both meta
// pages, then every page reachable from the active one's root — ids in
// range and each reached once, types where they belong, elements, keys,
// values and inline buckets within their page, keys in order as bbolt's
// own check wants them — and the freelist page, if there is one.
func checkStore(path string) (*storeInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	s := &storeInfo{}
	// Page size: from the first valid meta page, as bbolt finds it.
	var buf [4096]byte
	if err := readFull(f, buf[:pageHeader+metaSumLen+8], 0); err != nil {
		return nil, corrupt("%s: %d bytes, too short to hold its meta pages", MetaFile, size)
	}
	m0 := decodeMeta(buf[:], 0)
	ps := m0.pageSize
	if m0.err != nil {
		ps = 0
		for i := 0; i <= 14 && ps == 0; i++ {
			off := int64(1024) << i
			if off >= size-1024 {
				break
			}
			n, _ := f.ReadAt(buf[:], off)
			if m := decodeMeta(buf[:n], 1); m.err == nil {
				ps = m.pageSize
			}
		}
		if ps == 0 {
			return nil, corrupt("%s: both meta pages are damaged (page 0: %v; no valid page 1 found)", MetaFile, m0.err)
		}
	}
	if ps < 1024 || ps > 1<<16 || ps&(ps-1) != 0 {
		return nil, corrupt("%s: page size %d is not a power of two in [1 KiB, 64 KiB]", MetaFile, ps)
	}
	if size < 2*int64(ps) {
		return nil, corrupt("%s: %d bytes, too short to hold its meta pages of %d bytes", MetaFile, size, ps)
	}
	s.pages = size / int64(ps)
	for i := range s.metas {
		b := buf[:pageHeader+metaSumLen+8]
		if err := readFull(f, b, int64(i)*int64(ps)); err != nil {
			return nil, corrupt("%s: cannot read meta page %d: %v", MetaFile, i, err)
		}
		s.metas[i] = decodeMeta(b, i)
	}
	// The active page is the one bbolt picks, on bbolt's criteria alone
	// (magic, version, checksum): the tree walked below must be the tree
	// bbolt reads.
	switch a, b := s.metas[0], s.metas[1]; {
	case a.err != nil && b.err != nil:
		return nil, corrupt("%s: both meta pages are damaged (page 0: %v; page 1: %v)", MetaFile, a.err, b.err)
	case a.err != nil:
		s.active = 1
	case b.err != nil:
		s.active = 0
	case b.txid > a.txid:
		s.active = 1
	}
	for i, m := range s.metas {
		switch {
		case m.err != nil:
		case m.pageSize != ps:
			return nil, storeErr(uint64(i), "page size %d, the other meta page says %d", m.pageSize, ps)
		case m.txid%2 != uint64(i):
			return nil, storeErr(uint64(i), "txid %d belongs on meta page %d", m.txid, m.txid%2)
		}
	}
	m := s.metas[s.active]
	if m.hwm < 3 || m.hwm > uint64(s.pages) {
		return nil, storeErr(uint64(s.active), "high-water mark %d outside [3, %d] (the file holds %d pages)", m.hwm, s.pages, s.pages)
	}
	w := &walker{f: f, ps: uint64(ps), hwm: m.hwm, seen: make([]uint64, (m.hwm+63)/64)}
	if m.root < 2 || m.root >= m.hwm {
		return nil, storeErr(uint64(s.active), "root page %d outside [2, %d)", m.root, m.hwm)
	}
	if err := w.tree(m.root, 0); err != nil {
		return nil, err
	}
	if m.freelist != boltNoFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func readFull(f *os.File, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// decodeMeta decodes the meta page in b (at least its first 80 bytes).
// err says why bbolt would refuse it: its magic, version or checksum.
func decodeMeta(b []byte, index int) boltMeta {
	m := boltMeta{index: index}
	if len(b) < pageHeader+metaSumLen+8 {
		m.err = errors.New("short page")
		return m
	}
	h := b[pageHeader:]
	m.pageSize = ne.Uint32(h[8:])
	m.root = ne.Uint64(h[16:])
	m.freelist = ne.Uint64(h[32:])
	m.hwm = ne.Uint64(h[40:])
	m.txid = ne.Uint64(h[48:])
	sum := fnv.New64a()
	sum.Write(h[:metaSumLen])
	switch {
	case ne.Uint32(h) != boltMagic:
		m.err = fmt.Errorf("bad magic %#x", ne.Uint32(h))
	case ne.Uint32(h[4:]) != boltVersion:
		m.err = fmt.Errorf("version %d, want %d", ne.Uint32(h[4:]), boltVersion)
	case ne.Uint64(h[56:]) != sum.Sum64():
		m.err = fmt.Errorf("checksum %016x, computed %016x", ne.Uint64(h[56:]), sum.Sum64())
	}
	return m
}

// walker walks the page tree of a meta.db file.
type walker struct {
	f    *os.File
	ps   uint64
	hwm  uint64
	seen []uint64 // bitmap of the pages reached
}

// mark records that page id (and its overflow pages) is in use, and fails
// if one is already: a page reached twice is shared by two trees or is a
// cycle.
func (w *walker) mark(id uint64, overflow uint32) error {
	for p := id; p <= id+uint64(overflow); p++ {
		if w.seen[p/64]&(1<<(p%64)) != 0 {
			return storeErr(id, "reached twice (page %d is shared, or a cycle)", p)
		}
		w.seen[p/64] |= 1 << (p % 64)
	}
	return nil
}

// page reads page id with its overflow pages, checking its header.
func (w *walker) page(id uint64) ([]byte, uint16, error) {
	if id < 2 || id >= w.hwm {
		return nil, 0, storeErr(id, "page id outside [2, %d)", w.hwm)
	}
	var h [pageHeader]byte
	if err := readFull(w.f, h[:], int64(id*w.ps)); err != nil {
		return nil, 0, storeErr(id, "cannot read: %v", err)
	}
	flags, overflow := ne.Uint16(h[8:]), ne.Uint32(h[12:])
	if got := ne.Uint64(h[:]); got != id {
		return nil, 0, storeErr(id, "header says page %d", got)
	}
	if uint64(overflow) >= w.hwm-id {
		return nil, 0, storeErr(id, "%d overflow pages run past the high-water mark %d", overflow, w.hwm)
	}
	if (uint64(overflow)+1)*w.ps > maxSpan {
		return nil, 0, storeErr(id, "%d overflow pages: more than the %d MiB holefs ever writes in one page", overflow, maxSpan>>20)
	}
	if err := w.mark(id, overflow); err != nil {
		return nil, 0, err
	}
	b := make([]byte, (uint64(overflow)+1)*w.ps)
	if err := readFull(w.f, b, int64(id*w.ps)); err != nil {
		return nil, 0, storeErr(id, "cannot read: %v", err)
	}
	return b, flags, nil
}

// tree checks the B+tree rooted at page id: a branch or leaf page.
func (w *walker) tree(id uint64, depth int) error {
	return w.node(id, depth, nil, nil)
}

// node checks page id and what it leads to. Its keys must lie in
// [lo, hi) (nil: unbounded), as bbolt's check requires: a branch key is
// at most its child's first key and every key of the child is below the
// next branch key.
func (w *walker) node(id uint64, depth int, lo, hi []byte) error {
	if depth > maxDepth {
		return storeErr(id, "tree deeper than %d levels", maxDepth)
	}
	b, flags, err := w.page(id)
	if err != nil {
		return err
	}
	switch flags {
	case flagBranch:
		keys, kids, err := branchElems(id, b)
		if err != nil {
			return err
		}
		if err := keyOrder(id, keys, lo, hi); err != nil {
			return err
		}
		for i, kid := range kids {
			next := hi
			if i+1 < len(keys) {
				next = keys[i+1]
			}
			if err := w.node(kid, depth+1, keys[i], next); err != nil {
				return err
			}
		}
		return nil
	case flagLeaf:
		return w.leaf(id, b, depth, lo, hi)
	}
	return storeErr(id, "type %#x where a branch or leaf page belongs", flags)
}

// leaf checks a leaf page (b, or an inline bucket's page) and the
// buckets it holds.
func (w *walker) leaf(id uint64, b []byte, depth int, lo, hi []byte) error {
	keys, vals, flags, err := leafElems(id, b)
	if err != nil {
		return err
	}
	if err := keyOrder(id, keys, lo, hi); err != nil {
		return err
	}
	for i, v := range vals {
		if flags[i]&leafBucket == 0 {
			continue
		}
		if len(v) < bucketHeader {
			return storeErr(id, "element %d: bucket value of %d bytes, want at least %d", i, len(v), bucketHeader)
		}
		root := ne.Uint64(v)
		if root != 0 {
			if err := w.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		in := v[bucketHeader:]
		if len(in) < pageHeader {
			return storeErr(id, "element %d: inline bucket of %d bytes, too short for a page", i, len(in))
		}
		if f := ne.Uint16(in[8:]); f != flagLeaf {
			return storeErr(id, "element %d: inline bucket page of type %#x, want a leaf", i, f)
		}
		if depth+1 > maxDepth {
			return storeErr(id, "buckets nested deeper than %d levels", maxDepth)
		}
		if err := w.leaf(id, in, depth+1, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// branchElems returns a branch page's keys and child page ids.
func branchElems(id uint64, b []byte) ([][]byte, []uint64, error) {
	n := int(ne.Uint16(b[10:]))
	if n == 0 {
		return nil, nil, storeErr(id, "branch page with no elements")
	}
	if pageHeader+n*elemSize > len(b) {
		return nil, nil, storeErr(id, "%d elements do not fit a page of %d bytes", n, len(b))
	}
	keys, kids := make([][]byte, n), make([]uint64, n)
	for i := range n {
		e := pageHeader + i*elemSize
		pos, ksize := uint64(ne.Uint32(b[e:])), uint64(ne.Uint32(b[e+4:]))
		kids[i] = ne.Uint64(b[e+8:])
		start := uint64(e) + pos
		if ksize == 0 || start+ksize > uint64(len(b)) {
			return nil, nil, storeErr(id, "element %d: key of %d bytes at offset %d outside the page of %d bytes", i, ksize, start, len(b))
		}
		keys[i] = b[start : start+ksize]
	}
	return keys, kids, nil
}

// leafElems returns a leaf page's keys, values and element flags.
func leafElems(id uint64, b []byte) (keys, vals [][]byte, flags []uint32, err error) {
	n := int(ne.Uint16(b[10:]))
	if pageHeader+n*elemSize > len(b) {
		return nil, nil, nil, storeErr(id, "%d elements do not fit a page of %d bytes", n, len(b))
	}
	keys, vals, flags = make([][]byte, n), make([][]byte, n), make([]uint32, n)
	for i := range n {
		e := pageHeader + i*elemSize
		fl := ne.Uint32(b[e:])
		pos, ksize, vsize := uint64(ne.Uint32(b[e+4:])), uint64(ne.Uint32(b[e+8:])), uint64(ne.Uint32(b[e+12:]))
		start := uint64(e) + pos
		if fl&^leafBucket != 0 {
			return nil, nil, nil, storeErr(id, "element %d: unknown flags %#x", i, fl)
		}
		if ksize == 0 || start+ksize+vsize > uint64(len(b)) {
			return nil, nil, nil, storeErr(id, "element %d: key of %d bytes and value of %d at offset %d outside the page of %d bytes", i, ksize, vsize, start, len(b))
		}
		keys[i], vals[i], flags[i] = b[start:start+ksize], b[start+ksize:start+ksize+vsize], fl
	}
	return keys, vals, flags, nil
}

// keyOrder checks that keys ascend strictly within [lo, hi).
func keyOrder(id uint64, keys [][]byte, lo, hi []byte) error {
	for i, k := range keys {
		switch {
		case i == 0 && lo != nil && bytes.Compare(k, lo) < 0:
			return storeErr(id, "element 0: key %s below its parent's %s", clipHex(k), clipHex(lo))
		case i > 0 && bytes.Compare(keys[i-1], k) >= 0:
			return storeErr(id, "element %d: key %s not above the previous key %s", i, clipHex(k), clipHex(keys[i-1]))
		case hi != nil && bytes.Compare(k, hi) >= 0:
			return storeErr(id, "element %d: key %s not below its parent's next key %s", i, clipHex(k), clipHex(hi))
		}
	}
	return nil
}

// freelist checks the freelist page: its ids in range, ascending, and
// none of them a page in use.
func (w *walker) freelist(id uint64) error {
	b, flags, err := w.page(id)
	if err != nil {
		return err
	}
	if flags != flagFreelist {
		return storeErr(id, "type %#x where the freelist belongs", flags)
	}
	n, start := uint64(ne.Uint16(b[10:])), uint64(pageHeader)
	if n == 0xFFFF {
		if len(b) < pageHeader+8 {
			return storeErr(id, "freelist too short for its count")
		}
		n, start = ne.Uint64(b[pageHeader:]), pageHeader+8
	}
	if n > (uint64(len(b))-start)/8 {
		return storeErr(id, "freelist of %d ids does not fit its %d bytes", n, len(b))
	}
	prev := uint64(1)
	for i := range n {
		p := ne.Uint64(b[start+8*i:])
		switch {
		case p <= prev || p >= w.hwm:
			return storeErr(id, "free page id %d (element %d) out of order or outside [2, %d)", p, i, w.hwm)
		case w.seen[p/64]&(1<<(p%64)) != 0:
			return storeErr(id, "page %d is both free and in use", p)
		}
		prev = p
	}
	return nil
}

// clipHex formats at most 32 bytes of b in hex, saying how long it is.
func clipHex(b []byte) string {
	const max = 32
	if len(b) <= max {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%x... (%d bytes)", b[:max], len(b))
}
