package fuse

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// filled returns n page-aligned bytes of fill, for O_DIRECT.
func filled(n int, fill byte) []byte {
	b := alignedBuf(n)
	for i := range b {
		b[i] = fill
	}
	return b
}

// TestZonefsMount: zonefs's rules through a real mount, in every cache
// mode: a sequential file takes O_DIRECT writes at its end only, a
// buffered write fails at write(2) with EIO (not later, at writeback),
// truncation resets or finishes, and the namespace is fixed.
func TestZonefsMount(t *testing.T) {
	for _, mode := range []CacheMode{CacheWriteback, CacheWritethrough, CacheDirect} {
		t.Run(mode.String(), func(t *testing.T) {
			fsys, err := holefs.Open("", holefs.Options{Backend: holefs.BackendZonefs,
				Zoned: blockdev.ZonedOptions{ZoneBlocks: 16, Zones: 4, Conventional: 1}})
			if err != nil {
				t.Fatal(err)
			}
			m := mountOn(t, fsys, Options{Cache: mode})
			seq := m.path("seq/0")

			f, err := os.OpenFile(seq, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Write(make([]byte, 4096))
			wantErrno(t, err, syscall.EIO, "buffered write to a sequential file")
			f.Close()

			fd, err := unix.Open(seq, unix.O_WRONLY|unix.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if n, err := unix.Pwrite(fd, filled(8192, 'z'), 0); err != nil || n != 8192 {
				t.Fatalf("direct write at the write pointer: %d %v", n, err)
			}
			_, err = unix.Pwrite(fd, filled(4096, 'y'), 0)
			wantErrno(t, err, syscall.EINVAL, "direct write behind the write pointer")
			if n, err := unix.Pwrite(fd, filled(4096, 'x'), 8192); err != nil || n != 4096 {
				t.Fatalf("second direct write at the write pointer: %d %v", n, err)
			}
			got, err := os.ReadFile(seq)
			if want := append(bytes.Repeat([]byte{'z'}, 8192), bytes.Repeat([]byte{'x'}, 4096)...); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read back through the mount: %d bytes, %v", len(got), err)
			}

			wantErrno(t, os.Truncate(seq, 4096), syscall.EPERM, "truncate to the middle of a zone")
			wantErrno(t, os.Truncate(m.path("cnv/0"), 0), syscall.EPERM, "truncate of a conventional file")
			if err := os.Truncate(seq, 0); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(seq); err != nil || len(got) != 0 {
				t.Fatalf("after the reset: %d bytes, %v", len(got), err)
			}
			if n, err := unix.Pwrite(fd, filled(4096, 'w'), 0); err != nil || n != 4096 {
				t.Fatalf("direct write at the start after the reset: %d %v", n, err)
			}
			if got, err := os.ReadFile(seq); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{'w'}, 4096)) {
				t.Fatalf("after the reset and a write: %q..., %v", got[:min(len(got), 8)], err)
			}

			_, err = os.Create(m.path("seq/9"))
			wantErrno(t, err, syscall.EACCES, "create")
			wantErrno(t, os.Mkdir(m.path("seq/d"), 0o755), syscall.EPERM, "mkdir")
			wantErrno(t, os.Remove(seq), syscall.EPERM, "unlink")
			wantErrno(t, os.Rename(seq, m.path("seq/1")), syscall.EPERM, "rename")
		})
	}
}
