package pagecache

import (
	"fmt"
	"math/bits"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Page frames: the memory that holds page contents lives outside the Go
// heap, in chunks this file maps with mmap and cuts into 4 KiB frames
// (Linux's struct page / page frame split: the Page is the descriptor, the
// frame the memory). A frame goes back to its chunk's free list the moment
// the page's last reference goes, so the cache's resident memory follows
// the pages it holds, not the garbage collector's pacing: with page buffers
// on the heap, the heap grew to about twice the live cache before the GC
// reclaimed evicted pages. A chunk whose frames are all free is returned to
// the kernel (munmap), except one, the spare, kept so that a cache
// hovering at a chunk boundary does not map and unmap at every eviction.
// Free frames scattered over chunks still in use hold memory too: when
// they pass shrinkFrames and a quarter of the frames in use (a file
// truncated, a cache closed), their memory is dropped with MADV_DONTNEED
// (shrink), and Cache.Close drops all of it.
//
// Allocation prefers a frame that was used before (resident) over one never
// touched or dropped, and the lowest chunk over higher ones: the resident
// memory is then at most the peak number of frames in use, and high chunks
// drain and are unmapped when the cache shrinks.
//
// The race detector does not see memory outside the Go heap, so a use after
// release would go unnoticed: with HOLEFS_MEMCHECK=1 in the environment a
// released frame is poisoned, made inaccessible (PROT_NONE) and kept out of
// use until frameQuarantine frames were released after it, so any touch of
// it in that time kills the process with SIGSEGV (the idea of Linux's
// DEBUG_PAGEALLOC and page poisoning).

const (
	chunkFrames = 1024 // frames per chunk: 4 MiB
	chunkBytes  = chunkFrames * PageSize
	// shrinkFrames is how many resident free frames (8 MiB) the arena
	// keeps at least before it drops their memory.
	shrinkFrames = 2048
	// frameQuarantine is how many released frames memcheck keeps
	// inaccessible before the oldest may be reused (16 MiB).
	frameQuarantine = 4096
	// framePoison fills a released frame in memcheck mode (Linux's
	// PAGE_POISON).
	framePoison = 0xaa
)

// chunk is one mmap'd run of frames.
type chunk struct {
	mem  []byte // set when mapped; nil once unmapped, which no frame in use sees
	slot int    // index in frameArena.slots; +checklocks:frameArena.mu
	// free is a stack of released frame numbers, resident in memory.
	free []uint16 // +checklocks:frameArena.mu
	// cold is a stack of released frames whose memory was dropped: like
	// fresh frames, not resident and known to be zero.
	cold []uint16 // +checklocks:frameArena.mu
	// fresh frames, [fresh, chunkFrames), were never handed out since the
	// chunk was mapped: not resident, and known to be zero.
	fresh int                      // +checklocks:frameArena.mu
	used  [chunkFrames / 64]uint64 // frames handed out; +checklocks:frameArena.mu
	inUse int                      // +checklocks:frameArena.mu
	held  int                      // quarantined frames (memcheck); +checklocks:frameArena.mu
}

func (c *chunk) base() uintptr { return uintptr(unsafe.Pointer(&c.mem[0])) }

func (c *chunk) frame(n int) *[PageSize]byte {
	return (*[PageSize]byte)(c.mem[n*PageSize : (n+1)*PageSize])
}

// frameArena is the process's page-frame allocator. Its lock is a leaf
// (LOCKING.md): taken under any engine lock, it takes none and makes only
// mmap, munmap, madvise and mprotect calls under it.
type frameArena struct {
	check  bool // memcheck mode; set before first use
	mu     sync.Mutex
	slots  []*chunk // chunks by slot, nil where one was unmapped; +checklocks:mu
	byAddr []*chunk // mapped chunks ordered by address, to find a frame's chunk; +checklocks:mu
	// recycled and fresh are bitmaps over slots: chunks with resident free
	// frames, and chunks with cold or fresh frames.
	recycled, fresh []uint64 // +checklocks:mu
	residentFree    int      // frames on the chunks' free stacks; +checklocks:mu
	spare           *chunk   // the one empty chunk kept mapped; +checklocks:mu
	quarantine      []qframe // memcheck: released frames, oldest first; +checklocks:mu

	inUse  atomic.Int64 // frames handed out
	mapped atomic.Int64 // chunks mapped
}

type qframe struct {
	c *chunk
	n uint16
}

// frames is the one arena: page memory is a process resource, as it is
// the kernel's, and a chunk shared by several caches frees whole sooner.
var frames = frameArena{check: os.Getenv("HOLEFS_MEMCHECK") == "1"}

// FrameStats reports the page-frame arena shared by every Cache in the
// process: the bytes of frames holding pages (in use, including pages
// removed from the cache but still referenced) and the bytes of chunks
// mapped. Resident memory is at most the mapped bytes.
func FrameStats() (inUse, mapped int64) {
	return frames.inUse.Load() * PageSize, frames.mapped.Load() * chunkBytes
}

// alloc returns a zeroed frame.
func (a *frameArena) alloc() *[PageSize]byte {
	a.mu.Lock()
	c, n, zero := a.take()
	a.mu.Unlock()
	f := c.frame(n)
	if !zero {
		clear(f[:]) // a recycled frame holds another page's bytes
	}
	a.inUse.Add(1)
	return f
}

// take picks a frame: a resident free one if any, else a cold or fresh
// one, else one of a new chunk. It reports whether the frame is known to be
// zero.
// +checklocks:a.mu
func (a *frameArena) take() (c *chunk, n int, zero bool) {
	if s, ok := firstSet(a.recycled); ok {
		c = a.slots[s]
		n = int(c.free[len(c.free)-1])
		c.free = c.free[:len(c.free)-1]
		a.residentFree--
		if len(c.free) == 0 {
			clearBit(a.recycled, s)
		}
	} else {
		s, ok := firstSet(a.fresh)
		if !ok {
			s = a.mapChunk()
		}
		c = a.slots[s]
		if k := len(c.cold); k > 0 {
			n = int(c.cold[k-1])
			c.cold = c.cold[:k-1]
		} else {
			n = c.fresh
			c.fresh++
		}
		if len(c.cold) == 0 && c.fresh == chunkFrames {
			clearBit(a.fresh, s)
		}
		zero = true
	}
	if c == a.spare {
		a.spare = nil
	}
	c.used[n/64] |= 1 << (n % 64)
	c.inUse++
	return c, n, zero
}

// mapChunk maps a new chunk into the lowest free slot and returns the slot.
// +checklocks:a.mu
func (a *frameArena) mapChunk() int {
	mem, err := syscall.Mmap(-1, 0, chunkBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		// Like the Go heap: no memory for a page is fatal.
		panic(fmt.Sprintf("pagecache: cannot map %d bytes for page frames: %v", chunkBytes, err))
	}
	s := 0
	for s < len(a.slots) && a.slots[s] != nil {
		s++
	}
	if s == len(a.slots) {
		a.slots = append(a.slots, nil)
		if w := (s + 64) / 64; w > len(a.fresh) {
			a.fresh = append(a.fresh, 0)
			a.recycled = append(a.recycled, 0)
		}
	}
	c := &chunk{mem: mem, slot: s}
	a.slots[s] = c
	i := sort.Search(len(a.byAddr), func(i int) bool { return a.byAddr[i].base() > c.base() })
	a.byAddr = append(a.byAddr, nil)
	copy(a.byAddr[i+1:], a.byAddr[i:])
	a.byAddr[i] = c
	setBit(a.fresh, s)
	a.mapped.Add(1)
	return s
}

// release gives a frame back. The caller guarantees nothing can read or
// write it any more: the page's reference count went to zero.
func (a *frameArena) release(f *[PageSize]byte) {
	addr := uintptr(unsafe.Pointer(f))
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.byAddr), func(i int) bool { return a.byAddr[i].base() > addr }) - 1
	if i < 0 || addr >= a.byAddr[i].base()+chunkBytes || (addr-a.byAddr[i].base())%PageSize != 0 {
		panic(fmt.Sprintf("pagecache: released page frame %#x is not from the arena", addr))
	}
	c := a.byAddr[i]
	n := int(addr-c.base()) / PageSize
	if c.used[n/64]&(1<<(n%64)) == 0 {
		panic(fmt.Sprintf("pagecache: page frame %#x released twice", addr))
	}
	c.used[n/64] &^= 1 << (n % 64)
	c.inUse--
	a.inUse.Add(-1)
	if !a.check {
		a.putFree(c, n)
		return
	}
	fill(f, framePoison)
	if err := syscall.Mprotect(f[:], syscall.PROT_NONE); err != nil {
		panic(fmt.Sprintf("pagecache: memcheck: mprotect: %v", err))
	}
	c.held++
	a.quarantine = append(a.quarantine, qframe{c, uint16(n)})
	if len(a.quarantine) > frameQuarantine {
		a.unquarantine(1)
	}
}

// unquarantine makes the k oldest quarantined frames usable again.
// +checklocks:a.mu
func (a *frameArena) unquarantine(k int) {
	for _, q := range a.quarantine[:k] {
		if err := syscall.Mprotect(q.c.frame(int(q.n))[:], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			panic(fmt.Sprintf("pagecache: memcheck: mprotect: %v", err))
		}
		q.c.held--
		a.putFree(q.c, int(q.n))
	}
	a.quarantine = append(a.quarantine[:0], a.quarantine[k:]...)
}

// putFree puts frame n on its chunk's free list, returns the chunk to the
// kernel when that empties it, and drops the memory of the free frames
// when they are many.
// +checklocks:a.mu
func (a *frameArena) putFree(c *chunk, n int) {
	c.free = append(c.free, uint16(n))
	a.residentFree++
	setBit(a.recycled, c.slot)
	if c.inUse == 0 && c.held == 0 {
		if a.spare == nil {
			// Keep it, memory and all: a cache that empties and refills
			// one chunk (a file read, dropped, read again) must not pay a
			// page fault per frame each time.
			a.spare = c
		} else {
			a.unmap(c)
		}
	}
	// A few free frames are the churn of eviction, reused at once; many
	// are a cache that shrank, and their memory would otherwise stay
	// resident until the cache grows back.
	if a.residentFree > shrinkFrames && int64(a.residentFree) > a.inUse.Load()/4 {
		a.shrinkLocked()
	}
}

// shrink drops the memory of every free frame: Cache.Close calls it, so a
// process that closed its caches holds no page memory.
func (a *frameArena) shrink() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.shrinkLocked()
}

// shrinkLocked moves the free frames of every chunk to its cold stack,
// dropping their memory with one madvise per run of adjacent frames.
// +checklocks:a.mu
func (a *frameArena) shrinkLocked() {
	for _, c := range a.slots {
		if c == nil || len(c.free) == 0 {
			continue
		}
		slices.Sort(c.free)
		for i := 0; i < len(c.free); {
			j := i + 1
			for j < len(c.free) && c.free[j] == c.free[j-1]+1 {
				j++
			}
			run := c.mem[int(c.free[i])*PageSize : (int(c.free[j-1])+1)*PageSize]
			if err := syscall.Madvise(run, syscall.MADV_DONTNEED); err != nil {
				panic(fmt.Sprintf("pagecache: madvise: %v", err))
			}
			i = j
		}
		c.cold = append(c.cold, c.free...)
		a.residentFree -= len(c.free)
		c.free = c.free[:0]
		clearBit(a.recycled, c.slot)
		setBit(a.fresh, c.slot)
	}
}

// unmap returns an empty chunk to the kernel.
// +checklocks:a.mu
func (a *frameArena) unmap(c *chunk) {
	a.residentFree -= len(c.free)
	clearBit(a.recycled, c.slot)
	clearBit(a.fresh, c.slot)
	a.slots[c.slot] = nil
	for i, x := range a.byAddr {
		if x == c {
			a.byAddr = append(a.byAddr[:i], a.byAddr[i+1:]...)
			break
		}
	}
	if err := syscall.Munmap(c.mem); err != nil {
		panic(fmt.Sprintf("pagecache: munmap: %v", err))
	}
	c.mem = nil
	a.mapped.Add(-1)
}

func fill(f *[PageSize]byte, b byte) {
	for i := range f {
		f[i] = b
	}
}

func firstSet(bm []uint64) (int, bool) {
	for i, w := range bm {
		if w != 0 {
			return i*64 + bits.TrailingZeros64(w), true
		}
	}
	return 0, false
}

func setBit(bm []uint64, i int)   { bm[i/64] |= 1 << (i % 64) }
func clearBit(bm []uint64, i int) { bm[i/64] &^= 1 << (i % 64) }
