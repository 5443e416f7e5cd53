package holefs_test

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/holefs/holefs"
)

// BenchmarkReadHit measures a 4 KiB ReadAt of a fully cached 16 MiB file in
// each lock mode, and os.File.ReadAt of a file on /dev/shm (the kernel's
// page cache) for scale. Compare the modes with benchstat: the protocol's
// cost on hits should be nil.
func BenchmarkReadHit(b *testing.B) {
	const size = 16 << 20
	data := make([]byte, size)
	for _, mode := range holefs.LockModes {
		b.Run(mode.String(), func(b *testing.B) {
			fsys, err := holefs.Open("", holefs.Options{LockMode: mode, CacheBytes: 2 * size})
			if err != nil {
				b.Fatal(err)
			}
			defer fsys.Close()
			f, err := fsys.Create("f")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.WriteAt(data, 0); err != nil {
				b.Fatal(err)
			}
			benchReadAt(b, f)
		})
	}
	b.Run("os-devshm", func(b *testing.B) {
		f, err := os.CreateTemp("/dev/shm", "holefs-bench-")
		if err != nil {
			b.Skip("no /dev/shm:", err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := f.WriteAt(data, 0); err != nil {
			b.Fatal(err)
		}
		benchReadAt(b, f)
	})
}

func benchReadAt(b *testing.B, f interface {
	ReadAt([]byte, int64) (int, error)
}) {
	const pages = (16 << 20) / 4096
	b.Run("1g", func(b *testing.B) {
		buf := make([]byte, 4096)
		r := rand.New(rand.NewPCG(1, 2))
		b.SetBytes(4096)
		for b.Loop() {
			if _, err := f.ReadAt(buf, int64(r.IntN(pages))*4096); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(4096)
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 4096)
			r := rand.New(rand.NewPCG(rand.Uint64(), 2))
			for pb.Next() {
				if _, err := f.ReadAt(buf, int64(r.IntN(pages))*4096); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
