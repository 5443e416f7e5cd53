package holefs_test

import (
	"bytes"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// TestExt2Fallocate: ext2 has no fallocate, so every mode, allocation
// included, is EOPNOTSUPP (Linux's vfs_fallocate without f_op->fallocate),
// after vfs_fallocate's own argument checks, in Linux's order; a clone or
// dedupe is EOPNOTSUPP too; nothing changes the file.
func TestExt2Fallocate(t *testing.T) {
	const size = 8 * pg
	fsys := newFS(t, holefs.Options{Backend: holefs.BackendExt2, SizeBytes: 64 << 20})
	f := create(t, fsys, "f")
	data := pattern(3, size)
	writeAt(t, f, data, 0)
	ro := openFile(t, fsys, "f", syscall.O_RDONLY)
	fi, _ := f.Stat()
	blocks := attr(t, fi).Blocks
	tests := []struct {
		name   string
		mode   uint32
		off, n int64
		ro     bool
		errno  syscall.Errno
	}{
		{"allocate", 0, 0, pg, false, syscall.EOPNOTSUPP},
		{"allocate past EOF", 0, size, 4 * pg, false, syscall.EOPNOTSUPP},
		{"keep size", keep, size, pg, false, syscall.EOPNOTSUPP},
		{"punch", punch, 0, pg, false, syscall.EOPNOTSUPP},
		{"zero range", zero, 0, pg, false, syscall.EOPNOTSUPP},
		{"zero range keep size", zero | keep, 0, pg, false, syscall.EOPNOTSUPP},
		{"collapse", collapse, 0, pg, false, syscall.EOPNOTSUPP},
		{"insert", insert, 0, pg, false, syscall.EOPNOTSUPP},
		{"unshare", unshare, 0, pg, false, syscall.EOPNOTSUPP},
		// vfs_fallocate's checks come first.
		{"zero length", 0, 0, 0, false, syscall.EINVAL},
		{"negative offset", 0, -1, pg, false, syscall.EINVAL},
		{"collapse keep size", collapse | keep, 0, pg, false, syscall.EINVAL},
		{"read-only", 0, 0, pg, true, syscall.EBADF},
		{"past max file size", 0, maxFileSize, pg, false, syscall.EFBIG},
	}
	for _, tt := range tests {
		h := f
		if tt.ro {
			h = ro
		}
		wantErrno(t, h.Fallocate(tt.mode, tt.off, tt.n), tt.errno, tt.name)
		fi, _ := f.Stat()
		if fi.Size() != size || attr(t, fi).Blocks != blocks {
			t.Fatalf("%s: refused call changed the file: size %d, blocks %d", tt.name, fi.Size(), attr(t, fi).Blocks)
		}
	}
	g := create(t, fsys, "g")
	wantErrno(t, f.Clone(g, 0, 0, pg), syscall.EOPNOTSUPP, "clone")
	wantErrno(t, f.Dedupe(g, 0, 0, pg), syscall.EOPNOTSUPP, "dedupe")
	checkContent(t, f, data, "after refused calls")
}

// TestExt2Truncate: data under each indirect tree reads back from the
// device; st_blocks counts the indirect blocks, as ext2's i_blocks does;
// truncate, the one remover, gives every block back, and a file grown
// again reads zeros where the truncated data was.
func TestExt2Truncate(t *testing.T) {
	fsys := newFS(t, holefs.Options{Backend: holefs.BackendExt2, SizeBytes: 64 << 20})
	_, _, free0 := fsys.Statfs()
	f := create(t, fsys, "f")
	const (
		ind  = 12
		dind = ind + 1024
		tind = dind + 1024*1024
	)
	tests := []struct {
		page     int64
		indirect int64 // indirect blocks the file has once this page is written
	}{
		{0, 0}, {ind - 1, 0}, {ind, 1}, {dind, 3}, {tind, 6},
	}
	for _, tt := range tests {
		p := pattern(byte(tt.page), pg)
		writeAt(t, f, p, tt.page*pg)
		dropCache(t, f)
		got := make([]byte, pg)
		if _, err := f.ReadAt(got, tt.page*pg); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("page %d: read back %v, data equal %v", tt.page, err, bytes.Equal(got, p))
		}
		fi, _ := f.Stat()
		data := int64(len(tests))
		for i := range tests {
			if tests[i].page > tt.page {
				data--
			}
		}
		if want := (data + tt.indirect) * pg / 512; attr(t, fi).Blocks != want {
			t.Errorf("page %d: st_blocks %d, want %d", tt.page, attr(t, fi).Blocks, want)
		}
	}
	if err := f.Truncate(ind * pg); err != nil {
		t.Fatal(err)
	}
	if _, _, free := fsys.Statfs(); free != free0-2 { // pages 0 and 11
		t.Errorf("after truncate: %d free, want %d", free, free0-2)
	}
	if err := f.Truncate((tind + 1) * pg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, pg)
	if _, err := f.ReadAt(got, tind*pg); err != nil || !bytes.Equal(got, make([]byte, pg)) {
		t.Errorf("regrown file: page %d not zeros (%v)", tind, err)
	}
	if err := f.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}
