package meta

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/btree"
	"go.etcd.io/bbolt"
)

// Severity ranks a Finding.
type Severity uint8

const (
	// Info is not a problem: an orphan the next mount frees.
	Info Severity = iota
	// Warning is allowed by the format but worth knowing: a written
	// extent past EOF, whose data no read can reach.
	Warning
	// Error is corruption: an invariant of the format does not hold.
	Error
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// Kind names the invariant a Finding is about.
type Kind string

// The kinds of findings of Precheck, Check and Repair.
const (
	KindSuperblock  Kind = "superblock"       // the two superblock copies, the data file's size
	KindStore       Kind = "meta.db"          // bbolt's page structure, its buckets
	KindRollback    Kind = "rollback"         // meta.db is older than the image's last commit, or the log lost commits
	KindCommitSeq   Kind = "commit-record"    // block 0's commit record
	KindRecord      Kind = "bad-record"       // a record that does not decode
	KindState       Kind = "state"            // the state record's counts
	KindRoot        Kind = "root"             // the root directory
	KindNoInode     Kind = "missing-inode"    // extents, xattrs or entries of an inode with no inode record
	KindExtentType  Kind = "extents-non-file" // extents on a directory, symlink or special file
	KindSpecial     Kind = "special-file"     // a FIFO, socket or device with a size, or a device number it cannot have
	KindOverlap     Kind = "extent-overlap"   // two extents of a file map the same page
	KindShared      Kind = "block-shared"     // a block owned twice
	KindPastEOF     Kind = "past-eof"         // a written extent past the end of its file
	KindNotDir      Kind = "entry-in-non-dir" // directory entries of an inode that is not a directory
	KindDangling    Kind = "dangling-entry"   // an entry naming an inode that does not exist
	KindDirLink     Kind = "dir-linked-twice" // a directory reachable by two paths, or a cycle
	KindUnreachable Kind = "unreachable"      // an inode with links that no path from the root reaches
	KindLostFound   Kind = "lost+found"       // /lost+found is in the way
	KindOrphan      Kind = "orphan"           // an inode with no links, freed at mount
	KindNlink       Kind = "link-count"       // a link count that disagrees with the entries
	KindBlockMap    Kind = "block-map"        // ext2: a pointer past the device, an unreadable or empty indirect block
	KindUnchecked   Kind = "unchecked"        // a part of the image this check could not read
)

// Finding is one thing fsck found.
type Finding struct {
	Severity Severity
	Kind     Kind
	Ino      uint64 // the inode concerned; 0 if none
	Page     int64  // the file page concerned; -1 if none
	Name     string // the path or entry concerned; "" if none
	Problem  string // what is wrong
	Fix      string // what Repair does (or did) about it; "" if nothing
	Fixed    bool   // Repair did it
}

// String formats the finding on one line, without its fix.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Severity.String())
	b.WriteString(" [")
	b.WriteString(string(f.Kind))
	b.WriteString("]")
	if f.Ino != 0 {
		b.WriteString(" inode ")
		b.WriteString(utoa(f.Ino))
	}
	if f.Page >= 0 {
		fmt.Fprintf(&b, " page %d (offset %d)", f.Page, f.Page*BlockSize)
	}
	if f.Name != "" {
		b.WriteString(" ")
		b.WriteString(quote(f.Name))
	}
	b.WriteString(": ")
	b.WriteString(f.Problem)
	return b.String()
}

// Report is the result of Check or Repair.
type Report struct {
	SB       Superblock
	Findings []Finding
	// The image as Repair leaves it (or, for Check, would leave it).
	Inodes   int64 // inode records
	Dirs     int64
	Files    int64 // regular files
	Symlinks int64
	Special  int64 // FIFOs, sockets, character and block devices
	Orphans  int64 // inodes with no links, freed at the next mount
	Extents  int64
	Owned    int64 // data blocks owned by extents, or on ext2 images by the block maps (indirect blocks included)
	Indirect int64 // ext2 images: the indirect blocks among Owned (they have no extents)
	Free     int64 // data blocks owned by none: SB.Blocks - 1 - Owned
	Repaired bool  // Repair committed its fixes
}

// Errors returns the number of Error findings Repair fixed, and of those
// left as they were.
func (r *Report) Errors() (fixed, left int) {
	for _, f := range r.Findings {
		if f.Severity != Error {
			continue
		}
		if f.Fixed {
			fixed++
		} else {
			left++
		}
	}
	return fixed, left
}

// Count returns the number of findings of severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Progress is what CheckOptions.Progress receives while a check runs:
// Done of Total items of the current phase ("load", "extents", "blocks",
// "namespace", "commit"); Total is 0 when unknown.
type Progress struct {
	Phase       string
	Done, Total int64
}

// CheckOptions configure Check and Repair.
type CheckOptions struct {
	// Progress, if set, is called as the check advances, from the
	// calling goroutine.
	Progress func(Progress)
	// BlockMaps checks the block maps of an ext2 image's files, whose
	// indirect blocks are on the data device, which meta does not read
	// (package ext2fs's Fsck does: holefs fsck sets it). It gets every
	// inode record and returns its findings, the files' i_block roots it
	// changed (Repair only: with repair set it may also rewrite indirect
	// blocks, clearing bad pointers) and the blocks the maps own. Unset,
	// an ext2 image's block maps are reported unchecked.
	BlockMaps func(inodes map[uint64]Inode, repair bool) (BlockMapCheck, error)
}

// BlockMapCheck is what CheckOptions.BlockMaps found.
type BlockMapCheck struct {
	Findings []Finding
	Roots    map[uint64][NRoots]uint32 // changed i_block roots, by inode
	Owned    int64                     // data and indirect blocks owned
	Indirect int64                     // the indirect blocks among Owned
}

// Check verifies every invariant of an image and reports what is wrong,
// and what Repair would do about it; it writes nothing, so the image may
// be open read-only. An error means the check itself failed (the store
// could not be read), not that the image is damaged: that is in the
// report.
//
// Checked, beyond what Open checks: both superblock copies again; the
// page structure of meta.db; that every record decodes (extents within
// the device's data blocks [1, N)); that each file's extents are
// disjoint (keys keep them sorted); that no block is owned twice; that
// the state record's counts match the records; that extents belong to
// regular files, and written ones end within their file's last page
// (past it is a warning: only fallocate KEEP_SIZE leaves extents there,
// unwritten); that FIFOs, sockets and devices have size 0 and only
// devices a device number; that the root is a directory, every entry names an
// existing inode, every inode with links is reachable from the root,
// exactly once if it is a directory; and link counts (a directory's is
// 2 plus its subdirectories). Inodes with no links are orphans the next
// mount frees: reported, not errors.
func Check(img *Image, opts CheckOptions) (*Report, error) {
	return run(img, opts, false)
}

// Repair checks the image as Check does and commits the fixes in one
// transaction. It never discards data silently: what it changes is in the
// findings' Fix. Damaged records are removed (an extent running past the
// device is cut to it instead); records of a missing inode get a new
// inode; extents of a directory or symlink move to a new file; inodes no
// path reaches go to /lost+found as "#<ino>"; dangling entries, second
// links to a directory and entries of non-directories are removed; link
// counts and the state record are rewritten. Pages mapped twice within a
// file keep the earlier extent's blocks; a block owned by two files stays
// with the lower inode (a linked file before an orphan), and the other
// file's pages there become a hole. A damaged superblock is Precheck's to
// repair, before Open.
//
// The image must be open read-write, and nothing else may use it (no
// Journal): Repair fails with EAGAIN if a commit happened since it read
// the records.
func Repair(img *Image, opts CheckOptions) (*Report, error) {
	return run(img, opts, true)
}

func run(img *Image, opts CheckOptions, repair bool) (*Report, error) {
	if img.db == nil {
		return nil, errClosed
	}
	c := &fsck{
		img: img, opts: opts, rep: &Report{SB: img.SB}, now: time.Now().UnixNano(),
		created: map[uint64]bool{}, used: map[uint64]bool{},
		dirtyInodes: map[uint64]bool{}, dirtyExtents: map[uint64]bool{}, dirtyXattrs: map[uint64]bool{},
		dirtyDirents: map[direntRef]bool{}, reached: map[uint64]bool{},
		parent: map[uint64]uint64{}, name: map[uint64]string{}, added: map[uint64]int64{},
	}
	c.checkSuperblocks()
	c.checkCommits(repair)
	if err := c.load(); err != nil {
		return nil, err
	}
	c.checkRoot()
	c.checkMissingInodes()
	c.checkExtentTypes()
	c.checkSpecialFiles()
	c.checkExtents()
	c.checkSharedBlocks()
	if err := c.checkBlockMaps(repair); err != nil {
		return nil, err
	}
	c.checkNamespace()
	c.checkLinkCounts()
	c.count()
	if repair && c.changed() {
		if err := c.commit(); err != nil {
			return nil, err
		}
		for i := range c.rep.Findings {
			if c.rep.Findings[i].Fix != "" {
				c.rep.Findings[i].Fixed = true
			}
		}
		c.rep.Repaired = true
	}
	return c.rep, nil
}

// direntRef names a directory entry.
type direntRef struct {
	dir  uint64
	name string
}

// fsck holds the image's records as a model that the checks fix as they
// go, so that later checks see the earlier fixes, and Check reports
// exactly what Repair does. The dirty sets say what commit writes.
type fsck struct {
	img  *Image
	opts CheckOptions
	rep  *Report
	now  int64

	inodes  map[uint64]Inode
	extents map[uint64][]Extent          // by inode, in page order
	dirs    map[uint64]map[string]uint64 // entries by directory
	xattrs  map[uint64][]Xattr           // by inode
	created map[uint64]bool              // inodes fsck made: their link counts are set silently
	used    map[uint64]bool              // every inode number the records mention
	next    uint64                       // newIno's cursor

	bad          []Problem // records to delete
	stateRaw     []byte    // the state record as read before Load
	stateBad     bool
	seq          uint64
	dirtyInodes  map[uint64]bool
	dirtyExtents map[uint64]bool
	dirtyXattrs  map[uint64]bool
	dirtyDirents map[direntRef]bool
	dirtyState   bool

	// The namespace walk.
	reached  map[uint64]bool
	parent   map[uint64]uint64 // directory -> the directory it was reached from
	name     map[uint64]string // directory -> its name there
	orphan   map[uint64]bool
	lf       uint64           // /lost+found, once found or made
	added    map[uint64]int64 // subdirectories fsck linked into a directory
	visited  int64            // directories walked
	mapOwned int64            // blocks ext2 block maps own (CheckOptions.BlockMaps)
	mapInd   int64            // the indirect blocks among mapOwned
	ndirs    int64            // of all directories
}

func (c *fsck) report(f Finding) { c.rep.Findings = append(c.rep.Findings, f) }

func (c *fsck) progress(phase string, done, total int64) {
	if c.opts.Progress != nil && (done == total || done%4096 == 0) {
		c.opts.Progress(Progress{Phase: phase, Done: done, Total: total})
	}
}

// checkSuperblocks reads both copies again: Open checked them, but the
// files may have changed since.
func (c *fsck) checkSuperblocks() {
	sb, err := readSuperblock(c.img.DataPath())
	if err == nil && sb != c.img.SB {
		err = corrupt("%s: superblock changed since the image was opened", DataFile)
	}
	if err == nil {
		err = c.img.checkSuperblockCopy()
	}
	if err != nil {
		c.report(Finding{Severity: Error, Kind: KindSuperblock, Page: -1, Problem: err.Error()})
	}
}

// checkCommits reports what Open found of meta.db's meta pages and the
// commit record: a rollback (accepted or not), a damaged older meta page
// and a damaged record. Repair's commit rewrites the latter two.
func (c *fsck) checkCommits(repair bool) {
	img := c.img
	if rb := img.rollback; rb != nil {
		f := Finding{Severity: Error, Kind: KindRollback, Page: -1, Problem: rb.String()}
		if rb.Accepted {
			f.Fix, f.Fixed = "accept it: commit "+utoa(rb.To)+" is the latest now", true
		} else {
			f.Problem += "; fsck --repair --accept-rollback accepts the loss"
		}
		c.report(f)
	} else if o := img.store.other(); o.err != nil {
		c.report(Finding{Severity: Error, Kind: KindStore, Page: -1,
			Problem: fmt.Sprintf("%s meta page %d (the older one: nothing is lost) is damaged: %v", MetaFile, o.index, o.err),
			Fix:     "rewrite it (the next commit does)"})
		c.dirtyState = true
	}
	if img.SB.Compat&CompatCommitSeq != 0 && img.recErr != nil && (img.rollback == nil || img.rollback.Accepted) {
		c.report(Finding{Severity: Error, Kind: KindCommitSeq, Page: -1, Problem: img.recErr.Error(),
			Fix: "rewrite it from " + MetaFile + "'s commit sequence"})
		c.dirtyState = true
	}
}

// load reads the records into the model, reports the damaged ones and
// bbolt's own structural check, and compares the state record's counts
// with the records.
func (c *fsck) load() error {
	c.progress("load", 0, 0)
	err := safely("check", func() error {
		return c.img.db.View(func(tx *bbolt.Tx) error {
			c.stateRaw = append([]byte(nil), tx.Bucket([]byte(bucketSuper)).Get([]byte(keyState))...)
			for err := range tx.Check() {
				c.report(Finding{Severity: Error, Kind: KindStore, Page: -1, Problem: clip(MetaFile + ": " + err.Error())})
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("fsck %s: %w", c.img.Dir, ioErr(err))
	}
	snap, err := c.img.Load(func(p Problem) { c.bad = append(c.bad, p) })
	if err != nil {
		return fmt.Errorf("fsck %s: %w", c.img.Dir, ioErr(err))
	}
	c.inodes, c.extents, c.xattrs, c.dirs = snap.Inodes, snap.Extents, map[uint64][]Xattr{}, map[uint64]map[string]uint64{}
	c.seq = snap.Seq
	for ino := range c.inodes {
		c.used[ino] = true
	}
	owned := int64(0)
	for ino, xs := range c.extents {
		c.used[ino] = true
		for _, x := range xs {
			owned += x.Count
		}
	}
	for _, d := range snap.Dirents {
		if c.dirs[d.Dir] == nil {
			c.dirs[d.Dir] = map[string]uint64{}
		}
		c.dirs[d.Dir][d.Name] = d.Ino
		c.used[d.Dir], c.used[d.Ino] = true, true
	}
	for _, x := range snap.Xattrs {
		c.xattrs[x.Ino] = append(c.xattrs[x.Ino], x)
		c.used[x.Ino] = true
	}
	if err := c.reportBad(); err != nil {
		return err
	}
	if !c.stateBad && (snap.Owned != owned || snap.NInodes != int64(len(snap.Inodes))) {
		c.report(Finding{Severity: Error, Kind: KindState, Page: -1,
			Problem: fmt.Sprintf("state record counts %d owned blocks and %d inodes; the records hold %d and %d", snap.Owned, snap.NInodes, owned, len(snap.Inodes)),
			Fix:     "rewrite the state record from the records"})
		c.dirtyState = true
	}
	return nil
}

// reportBad reports the records Load could not decode. An extent whose
// only fault is running past the end of the device is cut to it, keeping
// the blocks that exist; every other damaged record is removed.
func (c *fsck) reportBad() error {
	return c.img.db.View(func(tx *bbolt.Tx) error {
		for _, p := range c.bad {
			// The decoders' messages name the record; the errno adds nothing here.
			msg := strings.TrimSuffix(p.Err.Error(), ": "+syscall.EUCLEAN.Error())
			f := Finding{Severity: Error, Kind: KindRecord, Page: -1, Problem: msg, Fix: "remove the record"}
			switch p.Bucket {
			case bucketSuper:
				f.Kind, f.Fix = KindState, "rewrite the state record from the records"
				c.stateBad, c.dirtyState = true, true
			case bucketInodes:
				if len(p.Key) == 8 {
					f.Ino = be.Uint64(p.Key)
				}
			case bucketExtents:
				if len(p.Key) == 16 {
					f.Ino, f.Page = be.Uint64(p.Key), int64(be.Uint64(p.Key[8:]))
				}
				if x, ok := salvageExtent(p.Key, tx.Bucket([]byte(bucketExtents)).Get(p.Key), c.img.SB.Blocks); ok {
					f.Fix = fmt.Sprintf("cut it to the device: keep blocks [%d, %d); pages from %d on become a hole", x.Block, x.Block+x.Count, x.Page+x.Count)
					c.extents[f.Ino] = insertExtent(c.extents[f.Ino], x)
					c.dirtyExtents[f.Ino] = true
					c.used[f.Ino] = true
				}
			case bucketDirents, bucketXattrs:
				if len(p.Key) >= 8 {
					f.Ino, f.Name = be.Uint64(p.Key), string(p.Key[8:])
				}
			}
			c.report(f)
		}
		return nil
	})
}

// salvageExtent decodes a checksummed extent record that DecodeExtent
// refused only because it runs past the end of the device, cut to the
// device.
func salvageExtent(key, value []byte, nblocks int64) (Extent, bool) {
	if len(key) != 16 || be.Uint64(key) == 0 {
		return Extent{}, false
	}
	v, err := unseal("extent", key, value)
	if err != nil || len(v) != 17 || v[16] > 1 {
		return Extent{}, false
	}
	x := Extent{Page: int64(be.Uint64(key[8:])), Count: int64(be.Uint64(v)), Block: int64(be.Uint64(v[8:])), Unwritten: v[16] == 1}
	if x.Page < 0 || x.Count <= 0 || x.Count > maxPages || x.Page > maxPages-x.Count || x.Block < 1 || x.Block >= nblocks || x.Count <= nblocks-x.Block {
		return Extent{}, false
	}
	x.Count = nblocks - x.Block
	return x, true
}

// insertExtent adds x to a page-ordered list.
func insertExtent(xs []Extent, x Extent) []Extent {
	i, _ := slices.BinarySearchFunc(xs, x.Page, func(y Extent, p int64) int { return cmp.Compare(y.Page, p) })
	return slices.Insert(xs, i, x)
}

func isDir(in Inode) bool  { return in.Mode&syscall.S_IFMT == modeDir }
func isFile(in Inode) bool { return in.Mode&syscall.S_IFMT == modeReg }

// isSpecial reports whether in is a FIFO, socket or device.
func isSpecial(in Inode) bool {
	switch in.Mode & syscall.S_IFMT {
	case modeFIFO, modeSock, modeChr, modeBlk:
		return true
	}
	return false
}

func endPage(xs []Extent) int64 {
	if len(xs) == 0 {
		return 0
	}
	x := xs[len(xs)-1]
	return x.Page + x.Count
}

func blockCount(xs []Extent) int64 {
	n := int64(0)
	for _, x := range xs {
		n += x.Count
	}
	return n
}

// link adds a directory entry to the model; unlink removes one.
func (c *fsck) link(dir uint64, name string, ino uint64) {
	ents := c.dirs[dir]
	if ents == nil {
		ents = map[string]uint64{}
		c.dirs[dir] = ents
	}
	ents[name] = ino
	c.dirtyDirents[direntRef{dir, name}] = true
}

func (c *fsck) unlink(dir uint64, name string) {
	delete(c.dirs[dir], name)
	if len(c.dirs[dir]) == 0 {
		delete(c.dirs, dir)
	}
	c.dirtyDirents[direntRef{dir, name}] = true
}

// newIno returns an inode number no record mentions.
func (c *fsck) newIno() uint64 {
	if c.next == 0 {
		for ino := range c.used {
			c.next = max(c.next, ino)
		}
	}
	for {
		c.next++ // wraps past MaxUint64 to search from the bottom
		if c.next > RootIno && !c.used[c.next] {
			c.used[c.next] = true
			return c.next
		}
	}
}

// create adds an inode fsck makes; its link count is set later.
func (c *fsck) create(ino uint64, mode uint32, size int64) {
	c.inodes[ino] = Inode{Ino: ino, Mode: mode, Size: size, Atime: c.now, Mtime: c.now, Ctime: c.now}
	c.created[ino] = true
	c.used[ino] = true
	c.dirtyInodes[ino] = true
}

// moveExtents gives inode from's extents to inode to.
func (c *fsck) moveExtents(from, to uint64) {
	if xs, ok := c.extents[from]; ok {
		c.extents[to] = xs
		delete(c.extents, from)
		c.dirtyExtents[from], c.dirtyExtents[to] = true, true
	}
}

// checkRoot makes sure inode 1 is a directory. A root that is something
// else moves to a new inode number, with its extents, xattrs and the
// entries naming it, and a new root takes its place (and its entries).
func (c *fsck) checkRoot() {
	root, ok := c.inodes[RootIno]
	switch {
	case !ok:
		c.report(Finding{Severity: Error, Kind: KindRoot, Ino: RootIno, Page: -1,
			Problem: "the root directory is missing", Fix: "create an empty root directory"})
	case !isDir(root):
		n := c.newIno()
		c.report(Finding{Severity: Error, Kind: KindRoot, Ino: RootIno, Page: -1,
			Problem: "the root inode is a " + typeName(root.Mode),
			Fix:     fmt.Sprintf("move it to inode %d and create an empty root directory", n)})
		root.Ino = n
		c.inodes[n] = root
		c.dirtyInodes[n] = true
		c.moveExtents(RootIno, n)
		if xs, ok := c.xattrs[RootIno]; ok {
			for i := range xs {
				xs[i].Ino = n
			}
			c.xattrs[n] = xs
			delete(c.xattrs, RootIno)
			c.dirtyXattrs[RootIno], c.dirtyXattrs[n] = true, true
		}
		for _, dir := range slices.Sorted(maps.Keys(c.dirs)) {
			for name, ino := range c.dirs[dir] {
				if ino == RootIno {
					c.link(dir, name, n)
				}
			}
		}
	default:
		return
	}
	c.create(RootIno, syscall.S_IFDIR|0o755, 0)
}

// checkMissingInodes gives an inode to every inode number that has
// extents, xattrs or directory entries but no inode record: a directory
// if it has entries (its extents, if any, then move to a file of their
// own), a regular file otherwise.
func (c *fsck) checkMissingInodes() {
	owners := map[uint64]bool{}
	for ino := range c.extents {
		owners[ino] = true
	}
	for ino := range c.xattrs {
		owners[ino] = true
	}
	for ino := range c.dirs {
		owners[ino] = true
	}
	for _, ino := range slices.Sorted(maps.Keys(owners)) {
		if _, ok := c.inodes[ino]; ok {
			continue
		}
		var has []string
		if n := len(c.dirs[ino]); n > 0 {
			has = append(has, plural(n, "directory entry", "directory entries"))
		}
		if xs := c.extents[ino]; len(xs) > 0 {
			has = append(has, plural(len(xs), "extent", "extents")+" ("+plural(int(blockCount(xs)), "block", "blocks")+")")
		}
		if n := len(c.xattrs[ino]); n > 0 {
			has = append(has, plural(n, "xattr", "xattrs"))
		}
		f := Finding{Severity: Error, Kind: KindNoInode, Ino: ino, Page: -1,
			Problem: "no inode record, but " + strings.Join(has, ", ")}
		if len(c.dirs[ino]) > 0 {
			f.Fix = "recreate it as a directory"
			c.create(ino, syscall.S_IFDIR|0o700, 0)
		} else {
			size := endPage(c.extents[ino]) * BlockSize
			f.Fix = fmt.Sprintf("recreate it as a regular file of %d bytes", size)
			c.create(ino, syscall.S_IFREG|0o600, size)
		}
		c.report(f)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// checkExtentTypes moves the extents of directories, symlinks and special
// files, which hold no file data, to new regular files: they may be some
// file's data.
func (c *fsck) checkExtentTypes() {
	for _, ino := range slices.Sorted(maps.Keys(c.extents)) {
		in := c.inodes[ino]
		if isFile(in) {
			continue
		}
		xs := c.extents[ino]
		n := c.newIno()
		size := endPage(xs) * BlockSize
		c.report(Finding{Severity: Error, Kind: KindExtentType, Ino: ino, Page: -1,
			Problem: fmt.Sprintf("a %s with %s (%s)", typeName(in.Mode), plural(len(xs), "extent", "extents"), plural(int(blockCount(xs)), "block", "blocks")),
			Fix:     fmt.Sprintf("move them to a new regular file, inode %d, of %d bytes", n, size)})
		c.create(n, syscall.S_IFREG|0o600, size)
		c.moveExtents(ino, n)
	}
}

// checkSpecialFiles checks what a FIFO, socket or device cannot have: a
// size (it holds no data; its extents are checkExtentTypes's), and a
// device number unless it is a device. Both are set to 0: the engine
// ignores them anyway.
func (c *fsck) checkSpecialFiles() {
	for _, ino := range slices.Sorted(maps.Keys(c.inodes)) {
		in := c.inodes[ino]
		if !isSpecial(in) && in.Rdev == 0 {
			continue
		}
		var problems []string
		if isSpecial(in) && in.Size != 0 {
			problems = append(problems, fmt.Sprintf("size %d", in.Size))
			in.Size = 0
		}
		if t := in.Mode & syscall.S_IFMT; t != modeChr && t != modeBlk && in.Rdev != 0 {
			problems = append(problems, fmt.Sprintf("device number %#x", in.Rdev))
			in.Rdev = 0
		}
		if len(problems) == 0 {
			continue
		}
		c.report(Finding{Severity: Error, Kind: KindSpecial, Ino: ino, Page: -1,
			Problem: "a " + typeName(in.Mode) + " with " + strings.Join(problems, " and "),
			Fix:     "set it to 0"})
		c.inodes[ino] = in
		c.dirtyInodes[ino] = true
	}
}

// checkExtents checks each file's extents against each other and against
// the file's size. Keys order a file's extents by page, so only overlap
// can be wrong: the later extent loses the pages the earlier one maps.
func (c *fsck) checkExtents() {
	inos := slices.Sorted(maps.Keys(c.extents))
	for i, ino := range inos {
		c.progress("extents", int64(i), int64(len(inos)))
		xs := c.extents[ino]
		out := xs[:0:0]
		end, endAt := int64(0), int64(0) // the furthest page mapped so far, and the extent mapping it
		for _, x := range xs {
			orig := x.Page // its key
			if x.Page < end {
				cut := min(x.Page+x.Count, end) - x.Page
				f := Finding{Severity: Error, Kind: KindOverlap, Ino: ino, Page: x.Page,
					Problem: fmt.Sprintf("extent of pages [%d, %d) (blocks [%d, %d)) overlaps the extent at page %d, which maps pages up to %d",
						x.Page, x.Page+x.Count, x.Block, x.Block+x.Count, endAt, end)}
				if cut == x.Count {
					f.Fix = fmt.Sprintf("remove it: the extent at page %d keeps mapping its pages; blocks [%d, %d) are freed", endAt, x.Block, x.Block+x.Count)
				} else {
					f.Fix = fmt.Sprintf("cut pages [%d, %d) out of it: the extent at page %d keeps mapping them; blocks [%d, %d) are freed",
						x.Page, x.Page+cut, endAt, x.Block, x.Block+cut)
				}
				c.report(f)
				c.dirtyExtents[ino] = true
				if cut == x.Count {
					continue
				}
				x.Page, x.Block, x.Count = x.Page+cut, x.Block+cut, x.Count-cut
			}
			if x.Page+x.Count > end {
				end, endAt = x.Page+x.Count, orig
			}
			out = append(out, x)
		}
		c.extents[ino] = out
		in := c.inodes[ino]
		eof := (in.Size + BlockSize - 1) / BlockSize
		for _, x := range out {
			if !x.Unwritten && x.Page+x.Count > eof {
				p := max(x.Page, eof)
				c.report(Finding{Severity: Warning, Kind: KindPastEOF, Ino: ino, Page: p,
					Problem: fmt.Sprintf("written extent maps pages [%d, %d) past the end of the file (size %d); only unwritten extents (fallocate KEEP_SIZE) belong there",
						p, x.Page+x.Count, in.Size)})
			}
		}
	}
	c.progress("extents", int64(len(inos)), int64(len(inos)))
}

// owner is a run of blocks owned by a file's extent.
type owner struct {
	start, end int64 // blocks [start, end)
	ino        uint64
	page       int64 // the file page of block start
}

// checkSharedBlocks finds blocks owned twice. Sorting all extents by
// block finds whether any are; only then are owners ranked (a linked file
// before an orphan, then by inode number, then page) and each extent,
// in rank order, loses the blocks a higher-ranked one already claimed.
// On a reflink image written extents may share blocks (clones): only an
// unwritten extent sharing a block is wrong there.
func (c *fsck) checkSharedBlocks() {
	reflink := c.img.SB.Incompat&IncompatReflink != 0
	var all []owner
	for ino, xs := range c.extents {
		for _, x := range xs {
			all = append(all, owner{x.Block, x.Block + x.Count, ino, x.Page})
		}
	}
	slices.SortFunc(all, func(a, b owner) int { return cmp.Compare(a.start, b.start) })
	shared := false
	for i := 1; i < len(all) && !shared; i++ {
		shared = all[i].start < all[i-1].end
	}
	if !shared {
		return
	}
	named := c.named()
	rank := func(ino uint64) int {
		if c.inodes[ino].Nlink == 0 && !named[ino] {
			return 1 // an orphan, freed at mount anyway
		}
		return 0
	}
	inos := slices.SortedFunc(maps.Keys(c.extents), func(a, b uint64) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
	})
	claimed := btree.NewG(32, func(a, b owner) bool { return a.start < b.start })
	// On a reflink image claimed holds the unwritten extents' blocks and
	// written holds the union of the written ones' (merged, so that both
	// trees stay disjoint and one descent finds what covers a block).
	written := btree.NewG(32, func(a, b owner) bool { return a.start < b.start })
	overlapping := func(t *btree.BTreeG[owner], x Extent) []owner {
		var hits []owner
		t.DescendLessOrEqual(owner{start: x.Block}, func(o owner) bool {
			if o.end > x.Block {
				hits = append(hits, o)
			}
			return false
		})
		t.AscendGreaterOrEqual(owner{start: x.Block + 1}, func(o owner) bool {
			if o.start >= x.Block+x.Count {
				return false
			}
			hits = append(hits, o)
			return true
		})
		return hits
	}
	done, total := int64(0), int64(len(all))
	for _, ino := range inos {
		var out []Extent
		for _, x := range c.extents[ino] {
			c.progress("blocks", done, total)
			done++
			// The claimed runs that overlap x's blocks, in block order.
			hits := overlapping(claimed, x)
			if reflink && x.Unwritten {
				hits = append(hits, overlapping(written, x)...)
				slices.SortFunc(hits, func(a, b owner) int { return cmp.Compare(a.start, b.start) })
			}
			pos := x.Block
			keep := func(end int64) {
				if end <= pos {
					return
				}
				y := Extent{Page: x.Page + pos - x.Block, Count: end - pos, Block: pos, Unwritten: x.Unwritten}
				out = append(out, y)
				o := owner{y.Block, y.Block + y.Count, ino, y.Page}
				if !reflink || y.Unwritten {
					claimed.ReplaceOrInsert(o)
					return
				}
				// Merge into the union of written blocks.
				for _, w := range overlapping(written, Extent{Block: o.start - 1, Count: o.end - o.start + 2}) {
					written.Delete(w)
					if w.start < o.start {
						o.start, o.ino, o.page = w.start, w.ino, w.page
					}
					o.end = max(o.end, w.end)
				}
				written.ReplaceOrInsert(o)
			}
			for _, o := range hits {
				s, e := max(o.start, x.Block), min(o.end, x.Block+x.Count)
				keep(s)
				p, op := x.Page+s-x.Block, o.page+s-o.start
				c.report(Finding{Severity: Error, Kind: KindShared, Ino: ino, Page: p,
					Problem: fmt.Sprintf("blocks [%d, %d) are also owned by inode %d at page %d", s, e, o.ino, op),
					Fix: fmt.Sprintf("cut pages [%d, %d) out of inode %d: bytes [%d, %d) become a hole; inode %d keeps the blocks at page %d",
						p, p+e-s, ino, p*BlockSize, (p+e-s)*BlockSize, o.ino, op)})
				c.dirtyExtents[ino] = true
				pos = e
			}
			keep(x.Block + x.Count)
		}
		c.extents[ino] = out
	}
	c.progress("blocks", total, total)
}

// checkNamespace walks the tree from the root, then links what it did not
// reach into /lost+found, leaving alone the orphans (no links, no
// entries), which the next mount frees.
func (c *fsck) checkNamespace() {
	for _, dir := range slices.Sorted(maps.Keys(c.dirs)) {
		in := c.inodes[dir]
		if isDir(in) {
			continue
		}
		ents := c.dirs[dir]
		c.report(Finding{Severity: Error, Kind: KindNotDir, Ino: dir, Page: -1,
			Problem: fmt.Sprintf("a %s with %s", typeName(in.Mode), plural(len(ents), "directory entry", "directory entries")),
			Fix:     "remove the entries (what only they name goes to /lost+found)"})
		for _, name := range slices.Sorted(maps.Keys(ents)) {
			c.unlink(dir, name)
		}
	}

	for _, in := range c.inodes {
		if isDir(in) {
			c.ndirs++
		}
	}
	c.reached[RootIno] = true
	c.walk(RootIno)

	named := c.named()
	c.orphan = map[uint64]bool{}
	var dirs, files []uint64
	for _, ino := range slices.Sorted(maps.Keys(c.inodes)) {
		in := c.inodes[ino]
		switch {
		case c.reached[ino]:
		case in.Nlink == 0 && !named[ino] && len(c.dirs[ino]) == 0 && !c.created[ino]:
			c.orphan[ino] = true
			c.report(Finding{Severity: Info, Kind: KindOrphan, Ino: ino, Page: -1,
				Problem: fmt.Sprintf("orphan %s (no links: unlinked while open), will be freed at mount", typeName(in.Mode))})
		case isDir(in):
			dirs = append(dirs, ino)
		default:
			files = append(files, ino)
		}
	}
	// The tops of unreached trees first, so that each keeps its shape;
	// then whatever is left of directory cycles; then loose files.
	for _, d := range dirs {
		if !c.reached[d] && !named[d] {
			c.attach(d)
		}
	}
	for _, d := range dirs {
		if !c.reached[d] {
			c.attach(d)
		}
	}
	for _, ino := range files {
		if !c.reached[ino] {
			c.attach(ino)
		}
	}
}

// named returns the inodes that directory entries name.
func (c *fsck) named() map[uint64]bool {
	named := map[uint64]bool{}
	for _, ents := range c.dirs {
		for _, ino := range ents {
			named[ino] = true
		}
	}
	return named
}

// walk visits the tree below dir, breadth first, in name order.
func (c *fsck) walk(dir uint64) {
	queue := []uint64{dir}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		ents := c.dirs[d]
		for _, name := range slices.Sorted(maps.Keys(ents)) {
			ino := ents[name]
			in, ok := c.inodes[ino]
			switch {
			case !ok:
				c.report(Finding{Severity: Error, Kind: KindDangling, Ino: d, Page: -1, Name: c.path(d, name),
					Problem: fmt.Sprintf("entry names inode %d, which does not exist", ino), Fix: "remove the entry"})
				c.unlink(d, name)
			case isDir(in) && c.reached[ino]:
				c.report(Finding{Severity: Error, Kind: KindDirLink, Ino: ino, Page: -1, Name: c.path(d, name),
					Problem: "a second entry for the directory " + quote(c.dirPath(ino)) + " (a hard link to a directory, or a cycle)",
					Fix:     "remove this entry"})
				c.unlink(d, name)
			case isDir(in):
				c.reached[ino] = true
				c.parent[ino], c.name[ino] = d, name
				queue = append(queue, ino)
			default:
				c.reached[ino] = true
			}
		}
		c.visited++
		c.progress("namespace", c.visited, c.ndirs)
	}
}

// dirPath names a directory the walk reached by the path it took.
func (c *fsck) dirPath(dir uint64) string {
	if dir == RootIno {
		return "/"
	}
	p, ok := c.parent[dir]
	if !ok {
		return "inode " + utoa(dir)
	}
	return c.path(p, c.name[dir])
}

// path names entry name of directory dir.
func (c *fsck) path(dir uint64, name string) string {
	return strings.TrimSuffix(c.dirPath(dir), "/") + "/" + name
}

// attach links an inode no path reaches into /lost+found as "#<ino>",
// and walks it if it is a directory.
func (c *fsck) attach(ino uint64) {
	in := c.inodes[ino]
	lf := c.lostFound()
	name := "#" + utoa(ino)
	for i := 1; c.taken(lf, name); i++ {
		name = "#" + utoa(ino) + "." + strconv.Itoa(i)
	}
	what := typeName(in.Mode)
	if isFile(in) {
		what += fmt.Sprintf(" of %d bytes in %s", in.Size, plural(int(blockCount(c.extents[ino])), "block", "blocks"))
	}
	f := Finding{Severity: Error, Kind: KindUnreachable, Ino: ino, Page: -1,
		Problem: fmt.Sprintf("%s with %s that no path from the root reaches", what, plural(int(in.Nlink), "link", "links")),
		Fix:     "link it as " + c.path(lf, name)}
	if c.created[ino] {
		f.Severity, f.Problem = Info, what+" made by fsck"
	}
	c.report(f)
	c.link(lf, name, ino)
	c.reached[ino] = true
	if isDir(in) {
		c.added[lf]++
		c.parent[ino], c.name[ino] = lf, name
		c.walk(ino)
	}
}

func (c *fsck) taken(dir uint64, name string) bool {
	_, ok := c.dirs[dir][name]
	return ok
}

// lostFound returns /lost+found, making it if needed. A non-directory in
// its place moves into it, as e2fsck does.
func (c *fsck) lostFound() uint64 {
	if c.lf != 0 {
		return c.lf
	}
	const name = "lost+found"
	ino, ok := c.dirs[RootIno][name]
	if ok && isDir(c.inodes[ino]) {
		c.lf = ino
		return ino
	}
	c.lf = c.newIno()
	c.create(c.lf, syscall.S_IFDIR|0o700, 0)
	c.link(RootIno, name, c.lf)
	c.added[RootIno]++
	c.reached[c.lf] = true
	c.parent[c.lf], c.name[c.lf] = RootIno, name
	if ok {
		moved := "#" + utoa(ino)
		c.report(Finding{Severity: Info, Kind: KindLostFound, Ino: ino, Page: -1, Name: "/" + name,
			Problem: "a " + typeName(c.inodes[ino].Mode) + " holds the name fsck needs for its directory",
			Fix:     "move it to /" + name + "/" + moved})
		c.link(c.lf, moved, ino)
	}
	return c.lf
}

// checkLinkCounts sets every link count from the entries: a directory's
// is 2 plus its subdirectories (its entry, its "." and their ".."), any
// other inode's the number of entries naming it.
func (c *fsck) checkLinkCounts() {
	links, subdirs := map[uint64]int64{}, map[uint64]int64{}
	for dir, ents := range c.dirs {
		for _, ino := range ents {
			links[ino]++
			if isDir(c.inodes[ino]) {
				subdirs[dir]++
			}
		}
	}
	for _, ino := range slices.Sorted(maps.Keys(c.inodes)) {
		if c.orphan[ino] {
			continue
		}
		in := c.inodes[ino]
		want := links[ino]
		if isDir(in) {
			want = 2 + subdirs[ino]
		}
		want = min(want, math.MaxUint32)
		if int64(in.Nlink) == want {
			continue
		}
		// A count that was right before fsck added a subdirectory
		// (/lost+found, or a directory linked into it) is set silently.
		if !c.created[ino] && int64(in.Nlink) != want-c.added[ino] {
			c.report(Finding{Severity: Error, Kind: KindNlink, Ino: ino, Page: -1,
				Problem: fmt.Sprintf("link count %d; the entries make it %d", in.Nlink, want),
				Fix:     fmt.Sprintf("set it to %d", want)})
		}
		in.Nlink = uint32(want)
		c.inodes[ino] = in
		c.dirtyInodes[ino] = true
	}
}

// count fills the report's totals from the model.
func (c *fsck) count() {
	r := c.rep
	r.Inodes = int64(len(c.inodes))
	r.Orphans = int64(len(c.orphan))
	for _, in := range c.inodes {
		switch in.Mode & syscall.S_IFMT {
		case modeDir:
			r.Dirs++
		case modeReg:
			r.Files++
		case modeLink:
			r.Symlinks++
		case modeFIFO, modeSock, modeChr, modeBlk:
			r.Special++
		}
	}
	for _, xs := range c.extents {
		r.Extents += int64(len(xs))
		r.Owned += blockCount(xs)
	}
	// The state record counts extents only: an ext2 image's is 0.
	r.Owned += c.mapOwned
	r.Indirect = c.mapInd
	r.Free = c.img.SB.Blocks - 1 - r.Owned
}

// checkBlockMaps checks an ext2 image's block maps with
// CheckOptions.BlockMaps and takes the roots it repaired.
func (c *fsck) checkBlockMaps(repair bool) error {
	if c.img.SB.Incompat&IncompatExt2 == 0 {
		return nil
	}
	if c.opts.BlockMaps == nil {
		c.report(Finding{Severity: Warning, Kind: KindUnchecked, Page: -1,
			Problem: "ext2 image: block maps not checked (no block map checker)"})
		return nil
	}
	res, err := c.opts.BlockMaps(maps.Clone(c.inodes), repair)
	if err != nil {
		return fmt.Errorf("fsck: block maps: %w", err)
	}
	c.rep.Findings = append(c.rep.Findings, res.Findings...)
	c.mapOwned, c.mapInd = res.Owned, res.Indirect
	for ino, r := range res.Roots {
		if in, ok := c.inodes[ino]; ok && in.IBlock != r {
			in.IBlock = r
			c.inodes[ino] = in
			c.dirtyInodes[ino] = true
		}
	}
	return nil
}

// changed reports whether commit has anything to write.
func (c *fsck) changed() bool {
	return len(c.bad) > 0 || c.dirtyState || len(c.dirtyInodes) > 0 || len(c.dirtyExtents) > 0 ||
		len(c.dirtyXattrs) > 0 || len(c.dirtyDirents) > 0
}
