package extentfs_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockmap/extentfs"
)

// TestConcurrentFiles runs one goroutine per file doing the operations the
// page cache issues without inode locks (Lookup, Allocate, MarkWritten) and
// Punch, all competing for the allocator, while another goroutine checks the
// whole filesystem. The race detector and lockcheck watch the locking; the
// final check watches the result.
func TestConcurrentFiles(t *testing.T) {
	const (
		nfiles = 6
		iters  = 400
		total  = 512
	)
	fs := extentfs.New(total)
	files := make([]*extentfs.File, nfiles)
	for i := range files {
		files[i] = newFile(fs)
	}
	var wg sync.WaitGroup
	errc := make(chan error, nfiles+1)
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for range iters {
				idx, n := rng.Int64N(128), 1+rng.Int64N(16)
				var err error
				switch rng.IntN(4) {
				case 0:
					_, err = f.Lookup(idx, n)
				case 1:
					err = f.Allocate(idx, n)
					if errors.Is(err, syscall.ENOSPC) {
						err = nil
					}
				case 2:
					err = f.MarkWritten(idx, n)
				case 3:
					err = f.Punch(idx, n)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	var checker sync.WaitGroup
	checker.Add(1)
	go func() {
		defer checker.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := fs.CheckInvariants(); err != nil {
				errc <- err
				return
			}
			fs.Statfs()
		}
	}()
	wg.Wait()
	close(done)
	checker.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	mustCheck(t, fs)
	var used int64
	for _, f := range files {
		used += f.Blocks()
	}
	if _, free := fs.Statfs(); free != total-used {
		t.Errorf("free = %d, want %d - %d", free, total, used)
	}
}

// TestConcurrentSameFile has fill paths and writeback share one file, as
// they do without the inode lock: readers under the shared extent-map lock,
// allocation and conversion under the exclusive one.
func TestConcurrentSameFile(t *testing.T) {
	fs := extentfs.New(256)
	f := newFile(fs)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range 300 {
				idx, n := rng.Int64N(200), 1+rng.Int64N(8)
				var err error
				switch g % 4 {
				case 0:
					_, err = f.Lookup(idx, n)
				case 1:
					err = f.Allocate(idx, n)
				case 2:
					err = f.MarkWritten(idx, n)
				case 3:
					_, err = f.NextData(idx)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	mustCheck(t, fs)
	if _, free := fs.Statfs(); free != 256-f.Blocks() {
		t.Errorf("free = %d, want 256 - %d", free, f.Blocks())
	}
}
