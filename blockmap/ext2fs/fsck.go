package ext2fs

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/meta"
)

// maxBadPointers is how many pointers past the device an indirect block
// may hold before fsck calls it garbage as a whole (e2fsck's "too many
// illegal blocks"): its parent's pointer is cleared instead of each.
const maxBadPointers = 8

// Fsck returns the block map checker of the ext2 image whose data device
// is dev, for meta.CheckOptions.BlockMaps. It walks every regular file's
// tree from its i_block (linked files first, then by inode number, so a
// block owned twice stays with the first) and reports, naming the inode
// and the pointer's path (i_block[13] -> block 812 slot 4 -> ...):
//   - a pointer past the device, an indirect block that cannot be read or
//     is mostly garbage, a block owned twice: errors; Repair clears the
//     pointer (the pages below become holes);
//   - a page linked past the file's size: a warning; an indirect block
//     with no pointer (a commit came between allocation and writeback):
//     info. The mount drops both; Repair clears them too.
//
// Blocks no tree reaches are free: the bitmap is rebuilt at every mount,
// so leaked blocks are not findings. With repair set, an indirect block
// with a cleared pointer is rewritten in place (offline, as e2fsck does:
// each rewrite only clears pointers, so a crash in the middle leaves an
// image the next fsck finishes) and the device flushed before fsck's
// meta.db transaction records the changed roots.
func Fsck(dev blockdev.Device) func(map[uint64]meta.Inode, bool) (meta.BlockMapCheck, error) {
	return func(inodes map[uint64]meta.Inode, repair bool) (meta.BlockMapCheck, error) {
		c := &mapCheck{dev: dev, nblocks: dev.NumBlocks(), repair: repair, owner: map[uint32]string{},
			res: meta.BlockMapCheck{Roots: map[uint64][NRoots]uint32{}}, buf: make([]byte, blockmap.PageSize)}
		rank := func(ino uint64) int {
			if inodes[ino].Nlink == 0 {
				return 1
			}
			return 0
		}
		inos := slices.SortedFunc(maps.Keys(inodes), func(a, b uint64) int {
			return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
		})
		for _, ino := range inos {
			in := inodes[ino]
			if in.IBlock == [NRoots]uint32{} {
				continue
			}
			if err := c.file(in); err != nil {
				return meta.BlockMapCheck{}, err
			}
		}
		if c.wrote {
			if err := dev.Flush(); err != nil {
				return meta.BlockMapCheck{}, fmt.Errorf("flush repaired indirect blocks: %w", err)
			}
		}
		return c.res, nil
	}
}

// SetFsck sets opts.BlockMaps to Fsck of img's data device when img is an
// ext2 image, and returns what closes the device after the check (a no-op
// for other images).
func SetFsck(img *meta.Image, opts *meta.CheckOptions) (closeDev func() error, err error) {
	if img.SB.Incompat&meta.IncompatExt2 == 0 {
		return func() error { return nil }, nil
	}
	dev, err := blockdev.OpenFile(img.DataPath(), img.SB.Blocks)
	if err != nil {
		return nil, fmt.Errorf("fsck: open the data device: %w", err)
	}
	opts.BlockMaps = Fsck(dev)
	return dev.Close, nil
}

type mapCheck struct {
	dev     blockdev.Device
	nblocks int64
	repair  bool
	owner   map[uint32]string // block -> "inode N page P" or its indirect block
	res     meta.BlockMapCheck
	buf     []byte
	wrote   bool

	ino     uint64 // the file being walked
	endPage int64  // its first page past EOF
}

func (c *mapCheck) report(sev meta.Severity, kind meta.Kind, page int64, fix, format string, args ...any) {
	c.res.Findings = append(c.res.Findings, meta.Finding{Severity: sev, Kind: kind, Ino: c.ino, Page: page,
		Problem: fmt.Sprintf(format, args...), Fix: fix})
}

func (c *mapCheck) file(in meta.Inode) error {
	c.ino, c.endPage = in.Ino, (in.Size+blockmap.PageSize-1)/blockmap.PageSize
	r := in.IBlock
	if in.Mode&syscall.S_IFMT != syscall.S_IFREG {
		// DecodeInode refuses this: only a regular file has a map.
		return fmt.Errorf("inode %d: block pointers on a file of mode %#o", in.Ino, in.Mode)
	}
	changed := false
	for i := range NDirect {
		if b := r[i]; b != 0 && !c.data(int64(i), b, fmt.Sprintf("i_block[%d]", i)) {
			r[i], changed = 0, true
		}
	}
	for t := range 3 {
		b := r[NDirect+t]
		if b == 0 {
			continue
		}
		keep, err := c.indirect(b, t+1, treeBase[t], fmt.Sprintf("i_block[%d]", NDirect+t))
		if err != nil {
			return err
		}
		if !keep {
			r[NDirect+t], changed = 0, true
		}
	}
	if changed {
		c.res.Roots[in.Ino] = r
	}
	return nil
}

// data checks the pointer at path to page p's block b and reports whether
// it stays.
func (c *mapCheck) data(p int64, b uint32, path string) bool {
	const clear = "clear the pointer: the page becomes a hole"
	switch o, dup := c.owner[b]; {
	case int64(b) >= c.nblocks:
		c.report(meta.Error, meta.KindBlockMap, p, clear, "%s points at block %d, past the device's %d blocks", path, b, c.nblocks)
	case dup:
		c.report(meta.Error, meta.KindShared, p, clear, "%s points at block %d, which is %s", path, b, o)
	case p >= c.endPage:
		c.report(meta.Warning, meta.KindPastEOF, p, "clear the pointer (the mount drops it too)",
			"%s links block %d past the end of the file (%d pages)", path, b, c.endPage)
	default:
		c.owner[b] = fmt.Sprintf("inode %d page %d", c.ino, p)
		c.res.Owned++
		return true
	}
	return false
}

// indirect checks the pointer at path to the indirect block b of depth d
// whose first page is base, and the tree below it, and reports whether
// the pointer stays.
func (c *mapCheck) indirect(b uint32, d int, base int64, path string) (bool, error) {
	const clear = "clear the pointer: the pages below become holes"
	o, dup := c.owner[b]
	switch {
	case int64(b) >= c.nblocks:
		c.report(meta.Error, meta.KindBlockMap, base, clear, "%s points at indirect block %d, past the device's %d blocks", path, b, c.nblocks)
		return false, nil
	case dup:
		c.report(meta.Error, meta.KindShared, base, clear, "%s points at indirect block %d, which is %s", path, b, o)
		return false, nil
	case base >= c.endPage:
		c.report(meta.Warning, meta.KindPastEOF, base, "clear the pointer (the mount drops it too)",
			"%s links indirect block %d (depth %d) past the end of the file (%d pages)", path, b, d, c.endPage)
		return false, nil
	}
	if err := c.dev.ReadBlocks(c.buf, int64(b)); err != nil {
		c.report(meta.Error, meta.KindBlockMap, base, clear, "%s: read indirect block %d: %v", path, b, err)
		return false, nil
	}
	var ptr [PtrsPerBlock]uint32
	bad := 0
	for i := range ptr {
		ptr[i] = binary.LittleEndian.Uint32(c.buf[4*i:])
		if int64(ptr[i]) >= c.nblocks {
			bad++
		}
	}
	if bad > maxBadPointers {
		c.report(meta.Error, meta.KindBlockMap, base, clear,
			"%s points at block %d, which is no indirect block: %d of its pointers are past the device", path, b, bad)
		return false, nil
	}
	c.owner[b] = fmt.Sprintf("inode %d's indirect block (depth %d) at page %d", c.ino, d, base)
	c.res.Owned++
	c.res.Indirect++
	here := fmt.Sprintf("%s -> block %d", path, b)
	changed, used := false, 0
	for i, p := range ptr {
		if p == 0 {
			continue
		}
		at := fmt.Sprintf("%s slot %d", here, i)
		keep := true
		if d == 1 {
			keep = c.data(base+int64(i), p, at)
		} else {
			var err error
			if keep, err = c.indirect(p, d-1, base+int64(i)*span(d), at); err != nil {
				return false, err
			}
		}
		if !keep {
			ptr[i], changed = 0, true
			continue
		}
		used++
	}
	if used == 0 {
		// A commit between Allocate and writeback writes out an
		// indirect block whose pages are only reserved: not damage.
		c.report(meta.Info, meta.KindBlockMap, base, "clear the pointer (the mount drops the block too)",
			"%s: indirect block %d (depth %d) has no pointer", path, b, d)
		delete(c.owner, b)
		c.res.Owned--
		c.res.Indirect--
		return false, nil
	}
	if changed && c.repair {
		encodeIndirect(&ptr, c.buf)
		if err := c.dev.WriteBlocks(c.buf, int64(b)); err != nil {
			return false, fmt.Errorf("inode %d: rewrite indirect block %d: %w", c.ino, b, err)
		}
		c.wrote = true
	}
	return true, nil
}
