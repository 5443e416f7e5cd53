package pagecache_test

import (
	"fmt"
	"math"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap/extentfs"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/pagecache"
)

// ExampleMapping_Read caches one file: a buffered write (inode lock held,
// blocks allocated first), writeback, a read from the device through
// readahead, a cache hit, and a truncation under the invalidate lock.
func ExampleMapping_Read() {
	c := pagecache.NewCache(pagecache.Options{CacheBytes: 1 << 20})
	defer c.Close()
	const nblocks = 64
	dev := blockdev.NewFaulty(blockdev.NewMemory(nblocks), blockdev.FaultOptions{})
	host := &lockcheck.RWMutex{}
	host.Init(lockcheck.RankInode, 1)
	m := c.NewMapping(pagecache.MappingOptions{
		Blocks: extentfs.New(nblocks).NewFile(0),
		Device: dev,
		Host:   host,
		Key:    1,
	})

	msg := []byte("hello, page cache")
	host.Lock()
	if err := m.Blocks().Allocate(0, 1); err != nil {
		panic(err)
	}
	if _, err := m.Write(msg, 0); err != nil {
		panic(err)
	}
	m.SetSize(int64(len(msg)))
	host.Unlock()
	fmt.Println("dirty pages:", m.NrDirty())

	if err := m.Sync(0, 0); err != nil {
		panic(err)
	}
	m.InvalidateClean(0, math.MaxInt64)
	fmt.Println("after sync and drop: dirty", m.NrDirty(), "cached", m.NrPages())

	var ra pagecache.ReadaheadState // one per open file
	buf := make([]byte, 100)
	n, err := m.Read(buf, 0, &ra)
	fmt.Printf("%q %v (device reads: %d)\n", buf[:n], err, dev.Reads())
	n, _ = m.Read(buf[:5], 7, &ra)
	fmt.Printf("%q (device reads: %d)\n", buf[:n], dev.Reads())

	host.Lock()
	inv := m.LockRemove(5, math.MaxInt64)
	m.SetSize(5)
	if err := m.TruncateRange(5, math.MaxInt64); err != nil {
		panic(err)
	}
	inv.Unlock()
	host.Unlock()
	n, err = m.Read(buf, 0, &ra)
	fmt.Printf("%q %v\n", buf[:n], err)
	// Output:
	// dirty pages: 1
	// after sync and drop: dirty 0 cached 0
	// "hello, page cache" EOF (device reads: 1)
	// "page " (device reads: 1)
	// "hello" EOF
}
