// Package lockcheck is holefs's lock-order checker, a small lockdep.
//
// Every lock in holefs has a Rank. A goroutine may only acquire a lock whose
// rank is greater than the rank of every lock it already holds, except for
// locks of one rank that are taken in ascending key order (two inodes or
// two mappings by inode number; other locks by address). The ranks are the
// Rank constants, outermost first; LOCKING.md describes each lock.
//
// Checking costs one atomic load per acquisition while disabled. Tests enable
// it with Enable (or HOLEFS_LOCKCHECK=1 in the environment); an out-of-order
// acquisition then panics with both locks named, so the test fails where the
// order was broken.
package lockcheck

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// Rank orders lock classes: a lock of a lower rank is taken first.
type Rank uint8

// The lock classes of holefs, outermost first.
const (
	RankNamespace  Rank = iota + 1 // vfs namespace (directory tree) lock
	RankInode                      // vfs inode lock (Linux i_rwsem)
	RankInvalidate                 // pagecache Mapping invalidate lock
	RankView                       // pagecache mapped-view lock (Linux i_mmap_rwsem)
	RankPage                       // pagecache page lock
	RankCommit                     // meta journal commit lock
	RankExtentMap                  // per-file block map lock (Linux i_data_sem)
	RankAllocator                  // block allocator lock
	RankCache                      // pagecache index, dirty-set and eviction-clock locks (leaf)
)

var rankNames = [...]string{
	RankNamespace:  "namespace",
	RankInode:      "inode",
	RankInvalidate: "invalidate",
	RankView:       "view",
	RankPage:       "page",
	RankCommit:     "commit",
	RankExtentMap:  "extentmap",
	RankAllocator:  "allocator",
	RankCache:      "cache",
}

func (r Rank) String() string {
	if int(r) < len(rankNames) && rankNames[r] != "" {
		return rankNames[r]
	}
	return "rank" + strconv.Itoa(int(r))
}

var enabled atomic.Bool

func init() {
	if os.Getenv("HOLEFS_LOCKCHECK") == "1" {
		enabled.Store(true)
	}
}

// Enable turns checking on for the whole process. Locks already held when it
// is called are not known to the checker, so call it before any lock is taken
// (in TestMain).
func Enable() { enabled.Store(true) }

// Enabled reports whether checking is on.
func Enabled() bool { return enabled.Load() }

type held struct {
	rank Rank
	key  uintptr
}

var (
	mu    sync.Mutex
	holds = map[uint64][]held{} // goroutine id -> locks held, in acquisition order; guarded by mu
)

// Acquire records that the calling goroutine is about to take the lock
// (rank, key) and panics if that breaks the order. Keys order locks of one
// rank: they must be taken in strictly ascending key order.
func Acquire(rank Rank, key uintptr) {
	if !enabled.Load() {
		return
	}
	g := goid()
	mu.Lock()
	hs := holds[g]
	for _, h := range hs {
		if h.rank > rank || (h.rank == rank && h.key >= key) {
			mu.Unlock()
			panic(fmt.Sprintf("lockcheck: lock order violation: taking %v lock %#x while holding %v lock %#x (order: %s)",
				rank, key, h.rank, h.key, orderString()))
		}
	}
	holds[g] = append(hs, held{rank, key})
	mu.Unlock()
}

// TryAcquired records a lock the calling goroutine took with a try-lock.
// A try-lock cannot deadlock, so it is not checked against the order (as
// lockdep does for trylocks), but it is held: later blocking acquisitions
// are ordered after it.
func TryAcquired(rank Rank, key uintptr) {
	if !enabled.Load() {
		return
	}
	g := goid()
	mu.Lock()
	holds[g] = append(holds[g], held{rank, key})
	mu.Unlock()
}

// Release records that the calling goroutine dropped the lock (rank, key).
// Releasing a lock the goroutine does not hold panics: it means a lock is
// released by another goroutine than the one that took it, which the
// checker (and LOCKING.md) forbids.
func Release(rank Rank, key uintptr) {
	if !enabled.Load() {
		return
	}
	g := goid()
	mu.Lock()
	defer mu.Unlock()
	hs := holds[g]
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i] == (held{rank, key}) {
			hs = append(hs[:i], hs[i+1:]...)
			if len(hs) == 0 {
				delete(holds, g)
			} else {
				holds[g] = hs
			}
			return
		}
	}
	panic(fmt.Sprintf("lockcheck: releasing %v lock %#x that this goroutine does not hold", rank, key))
}

// Held reports the number of checked locks the calling goroutine holds.
// It is 0 when checking is disabled.
func Held() int {
	if !enabled.Load() {
		return 0
	}
	g := goid()
	mu.Lock()
	defer mu.Unlock()
	return len(holds[g])
}

func orderString() string {
	var b bytes.Buffer
	for r := RankNamespace; r <= RankCache; r++ {
		if r > RankNamespace {
			b.WriteString(" > ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// goid returns the calling goroutine's id. The runtime does not export it;
// the first line of the goroutine's stack trace carries it. This is slow
// (about a microsecond), which is why checking is only enabled in tests.
func goid() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	b := bytes.TrimPrefix(buf[:n], []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("lockcheck: cannot parse goroutine id from " + strconv.Quote(string(buf[:n])))
	}
	return id
}

// EnableForTests turns checking on from a TestMain, unless the run is a
// benchmark run (-test.bench set): checking costs a stack walk per lock
// acquisition, which would drown what the benchmark measures.
func EnableForTests() {
	if !flag.Parsed() {
		flag.Parse()
	}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		return
	}
	Enable()
}
