package pagecache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// trim ends the quarantine and unmaps the spare chunk: what is left
// mapped then holds frames in use.
func (a *frameArena) trim() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unquarantine(len(a.quarantine))
	if c := a.spare; c != nil {
		a.spare = nil
		a.unmap(c)
	}
}

func frameAddr(f *[PageSize]byte) uintptr { return uintptr(unsafe.Pointer(f)) }

// TestFrameReuse: a released frame comes back at the next allocation,
// zeroed; in memcheck mode only after frameQuarantine later releases.
func TestFrameReuse(t *testing.T) {
	for _, check := range []bool{false, true} {
		t.Run(fmt.Sprintf("check=%v", check), func(t *testing.T) {
			a := &frameArena{check: check}
			defer a.trim()
			f := a.alloc()
			fill(f, 0x5c)
			addr := frameAddr(f)
			a.release(f)
			g := a.alloc()
			if got := frameAddr(g) == addr; got == check {
				t.Fatalf("frame reused at once = %v, want %v", got, !check)
			}
			if !check {
				if g[0] != 0 || g[PageSize-1] != 0 {
					t.Fatal("a reused frame is not zeroed")
				}
				a.release(g)
				return
			}
			// Each release pushes the first one further out of quarantine.
			held := []*[PageSize]byte{g}
			for i := 0; i < frameQuarantine+1; i++ {
				held = append(held, a.alloc())
			}
			for _, h := range held {
				a.release(h)
			}
			back := false
			for i := 0; i < 2*frameQuarantine && !back; i++ {
				h := a.alloc()
				back = frameAddr(h) == addr
				if back && (h[0] != 0 || h[PageSize-1] != 0) {
					t.Fatal("a frame back from quarantine is not zeroed")
				}
				held = append(held[:0], h)
				defer a.release(h)
			}
			if !back {
				t.Fatal("the frame never came back from quarantine")
			}
		})
	}
}

// TestFramePoison: memcheck fills a released frame with the poison
// pattern before it makes it inaccessible. /proc/self/mem reads it past
// the protection, as a debugger would.
func TestFramePoison(t *testing.T) {
	a := &frameArena{check: true}
	defer a.trim()
	f := a.alloc()
	fill(f, 0x11)
	addr := frameAddr(f)
	a.release(f)
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Skipf("no /proc/self/mem: %v", err)
	}
	defer mem.Close()
	got := make([]byte, PageSize)
	if _, err := mem.ReadAt(got, int64(addr)); err != nil {
		t.Skipf("reading a PROT_NONE frame through /proc/self/mem: %v", err)
	}
	if want := bytes.Repeat([]byte{framePoison}, PageSize); !bytes.Equal(got, want) {
		t.Fatalf("released frame holds %x..., want the poison %x", got[:8], framePoison)
	}
}

// residentBytes returns how much of the memory a's mapped chunks hold is
// resident (mincore(2)). Unlike the process's RSS it counts the arena
// alone, so a GC returning heap memory meanwhile does not move it.
func residentBytes(t *testing.T, a *frameArena) int64 {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	vec := make([]byte, chunkBytes/os.Getpagesize())
	var n int64
	for _, c := range a.slots {
		if c == nil || c.mem == nil {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&c.mem[0])), uintptr(len(c.mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatalf("mincore: %v", errno)
		}
		for _, v := range vec {
			n += int64(v & 1)
		}
	}
	return n * int64(os.Getpagesize())
}

// TestFrameChunkReturn: when the frames of chunks are all released, the
// chunks go back to the kernel but one, the spare, and the resident memory
// falls by what they held, whatever the order of the releases; shrinking
// (Cache.Close) frees the spare's memory too.
func TestFrameChunkReturn(t *testing.T) {
	const chunks = 8
	for _, order := range []string{"in order", "reversed", "interleaved"} {
		t.Run(order, func(t *testing.T) {
			a := &frameArena{}
			defer a.trim()
			before := residentBytes(t, a)
			var fs []*[PageSize]byte
			for i := 0; i < chunks*chunkFrames; i++ {
				f := a.alloc()
				f[0], f[PageSize-1] = 1, 1 // resident
				fs = append(fs, f)
			}
			if got := a.mapped.Load(); got != chunks {
				t.Fatalf("%d chunks mapped for %d chunks of frames", got, chunks)
			}
			full := residentBytes(t, a)
			if full-before < chunks*chunkBytes*3/4 {
				t.Fatalf("resident memory grew %d bytes for %d bytes of touched frames", full-before, chunks*chunkBytes)
			}
			switch order {
			case "reversed":
				for i, j := 0, len(fs)-1; i < j; i, j = i+1, j-1 {
					fs[i], fs[j] = fs[j], fs[i]
				}
			case "interleaved":
				var il []*[PageSize]byte
				for k := 0; k < chunkFrames; k++ {
					for c := 0; c < chunks; c++ {
						il = append(il, fs[c*chunkFrames+k])
					}
				}
				fs = il
			}
			for _, f := range fs {
				a.release(f)
			}
			if got := a.mapped.Load(); got != 1 {
				t.Fatalf("%d chunks still mapped with no frame in use, want the one spare", got)
			}
			if after := residentBytes(t, a); full-after < chunks*chunkBytes*3/4 {
				t.Fatalf("resident memory fell %d bytes after releasing %d bytes of frames", full-after, chunks*chunkBytes)
			}
			if a.inUse.Load() != 0 {
				t.Fatalf("%d frames in use after releasing all", a.inUse.Load())
			}
			// The spare keeps its memory (unless the free frames were many
			// while it emptied) until a Cache closes and shrinks the arena.
			a.shrink()
			if dropped := full - residentBytes(t, a); dropped < chunks*chunkBytes-chunkBytes/2 {
				t.Fatalf("after shrink the resident memory fell %d bytes, want about %d", dropped, chunks*chunkBytes)
			}
			if f := a.alloc(); f[0] != 0 || f[PageSize-1] != 0 || a.mapped.Load() != 1 {
				t.Fatal("the shrunk spare does not hand out zeroed frames")
			} else {
				a.release(f)
			}
		})
	}
}

// TestFrameShrink: free frames scattered over chunks still in use (no
// chunk empties) have their memory dropped once they are many, and come
// back zeroed; a few free frames, the churn of eviction, keep theirs.
func TestFrameShrink(t *testing.T) {
	const chunks = 6
	a := &frameArena{}
	defer a.trim()
	var fs []*[PageSize]byte
	for i := 0; i < chunks*chunkFrames; i++ {
		f := a.alloc()
		fill(f, 0x77)
		fs = append(fs, f)
	}
	churn := func() {
		for i := 0; i < 64; i++ {
			a.release(fs[2*i])
		}
		for i := 0; i < 64; i++ {
			fs[2*i] = a.alloc()
		}
	}
	churn()
	a.mu.Lock()
	resident := a.residentFree
	a.mu.Unlock()
	if resident != 0 {
		t.Fatalf("%d free frames resident after churn that reused them all", resident)
	}
	before := residentBytes(t, a)
	for i := 0; i < len(fs); i += 2 {
		a.release(fs[i])
	}
	freed := int64(len(fs) / 2 * PageSize)
	if got := a.mapped.Load(); got != chunks {
		t.Fatalf("%d chunks mapped, want %d: none is empty", got, chunks)
	}
	if dropped := before - residentBytes(t, a); dropped < freed/2 {
		t.Fatalf("releasing %d bytes of scattered frames dropped %d resident bytes", freed, dropped)
	}
	for i := 0; i < len(fs); i += 2 {
		f := a.alloc()
		if f[0] != 0 || f[PageSize-1] != 0 {
			t.Fatal("a frame whose memory was dropped came back not zeroed")
		}
		fs[i] = f
	}
	if got := a.mapped.Load(); got != chunks {
		t.Fatalf("%d chunks mapped after reallocating the freed frames, want %d", got, chunks)
	}
	for _, f := range fs {
		a.release(f)
	}
}

// TestFrameMisuse: a double release or a foreign pointer panics at once
// rather than corrupting the free lists.
func TestFrameMisuse(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(a *frameArena)
		want string
	}{
		{"double release", func(a *frameArena) {
			f := a.alloc()
			a.alloc() // keeps the chunk mapped
			a.release(f)
			a.release(f)
		}, "released twice"},
		{"heap buffer", func(a *frameArena) {
			a.alloc()
			a.release(new([PageSize]byte))
		}, "not from the arena"},
		{"inside a frame", func(a *frameArena) {
			f := a.alloc()
			a.release((*[PageSize]byte)(unsafe.Add(unsafe.Pointer(f), 8)))
		}, "not from the arena"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &frameArena{}
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.want) {
					t.Fatalf("recovered %v, want a panic saying %q", r, tc.want)
				}
			}()
			tc.do(a)
		})
	}
}

// TestFrameConcurrent: goroutines allocate, stamp, check and release
// frames at once; a frame handed to two of them at the same time shows as
// a foreign stamp. Run under -race: the arena's lock is what orders one
// owner's writes before the next owner's zeroing.
func TestFrameConcurrent(t *testing.T) {
	for _, check := range []bool{false, true} {
		t.Run(fmt.Sprintf("check=%v", check), func(t *testing.T) {
			a := &frameArena{check: check}
			defer a.trim()
			const workers, rounds, hold = 4, 300, 40
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []*[PageSize]byte
					for r := 0; r < rounds; r++ {
						f := a.alloc()
						if binary.LittleEndian.Uint64(f[:]) != 0 {
							errs <- fmt.Errorf("worker %d got a frame not zeroed", w)
							return
						}
						stamp := uint64(w)<<32 | uint64(r) | 1<<63
						binary.LittleEndian.PutUint64(f[:], stamp)
						binary.LittleEndian.PutUint64(f[PageSize-8:], stamp)
						mine = append(mine, f)
						if len(mine) == hold || r == rounds-1 {
							for _, g := range mine {
								if binary.LittleEndian.Uint64(g[:])>>32 != uint64(w)|1<<31 ||
									binary.LittleEndian.Uint64(g[PageSize-8:])>>32 != uint64(w)|1<<31 {
									errs <- fmt.Errorf("worker %d: a frame it holds was handed to another", w)
									return
								}
								a.release(g)
							}
							mine = mine[:0]
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if n := a.inUse.Load(); n != 0 {
				t.Fatalf("%d frames in use after every worker released its own", n)
			}
		})
	}
}

// TestFramesNoLeak: caches opened, filled (page cache and memfs-like
// unevictable mappings, a view still mapped, a page still referenced) and
// closed, many times over, give back every frame once the last references
// go.
func TestFramesNoLeak(t *testing.T) {
	inUse0, _ := FrameStats()
	for i := 0; i < 16; i++ {
		e := newEnv(t, Options{CacheBytes: 64 * pg}, 512)
		data := bytes.Repeat([]byte{byte(i + 1)}, 100*pg)
		e.write(t, data, 0) // beyond the limit: evictions and writeback
		u := e.c.NewMapping(MappingOptions{Blocks: e.store.NewFile(1), Host: e.host, Key: 2, Unevictable: true})
		e.host.Lock()
		if _, err := u.Write(data[:8*pg], 0); err != nil {
			t.Fatal(err)
		}
		u.SetSize(8 * pg)
		e.host.Unlock()
		buf := make([]byte, pg)
		if _, err := e.m.Read(buf, pg, nil); err != nil {
			t.Fatal(err)
		}
		held := e.m.findGet(1) // a reference outliving Close
		v, err := e.m.Mmap(0, 4*pg, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.ReadAt(buf, 2*pg); err != nil {
			t.Fatal(err)
		}
		e.dev.Clear()
		if err := e.c.Close(); err != nil {
			t.Fatal(err)
		}
		if held == nil {
			t.Fatal("page 1 not cached")
		}
		if got := held.data[0]; got != byte(i+1) {
			t.Fatalf("a page referenced across Close reads %d, want %d", got, i+1)
		}
		held.put()
		v.Unmap()
	}
	if inUse, _ := FrameStats(); inUse != inUse0 {
		t.Fatalf("%d frame bytes in use after the caches closed, %d before", inUse, inUse0)
	}
}

// TestUseAfterReleaseFaults: in memcheck mode a touch of a page's frame
// after the page was truncated and its last reference dropped kills the
// process with SIGSEGV; without memcheck the same touch goes unnoticed,
// which is why the mode exists. The touch runs in a child process.
func TestUseAfterReleaseFaults(t *testing.T) {
	if os.Getenv("PAGECACHE_TOUCH_RELEASED") == "1" {
		touchReleased(t)
		return
	}
	for _, tc := range []struct {
		memcheck string
		dies     bool
	}{{"1", true}, {"0", false}} {
		t.Run("HOLEFS_MEMCHECK="+tc.memcheck, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestUseAfterReleaseFaults$", "-test.count=1")
			cmd.Env = append(os.Environ(), "PAGECACHE_TOUCH_RELEASED=1", "HOLEFS_MEMCHECK="+tc.memcheck)
			out, err := cmd.CombinedOutput()
			faulted := strings.Contains(string(out), "SIGSEGV") && strings.Contains(string(out), "unexpected fault address")
			if tc.dies && (err == nil || !faulted) {
				t.Fatalf("the touch of a released frame did not fault: err %v, output:\n%s", err, out)
			}
			if !tc.dies && (err != nil || !strings.Contains(string(out), "touched released frame")) {
				t.Fatalf("without memcheck the child should survive the touch: err %v, output:\n%s", err, out)
			}
		})
	}
}

// touchReleased is the child: it caches a page, keeps a pointer to its
// frame, truncates it (the last reference goes), and reads the frame.
func touchReleased(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, bytes.Repeat([]byte{7}, pg), 0)
	p := e.m.findGet(0)
	if p == nil {
		t.Fatal("page 0 not cached")
	}
	data := p.data
	p.put()
	e.truncate(t, 0)
	if frames.check != (os.Getenv("HOLEFS_MEMCHECK") == "1") {
		t.Fatal("HOLEFS_MEMCHECK not honoured")
	}
	fmt.Printf("touched released frame: %d\n", data[0]) // faults in memcheck mode
}
