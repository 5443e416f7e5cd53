package meta

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.etcd.io/bbolt"
)

func TestCreate(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) // makes what is at dir before Create
		opts    CreateOptions
		errno   syscall.Errno
		want    string // in the error
	}{
		{name: "new path", prepare: func(*testing.T, string) {}},
		{name: "empty directory", prepare: mkdir},
		{name: "image without force", prepare: mkimage, errno: syscall.EEXIST, want: "an image exists there; use --force to replace it"},
		{name: "image with force", prepare: mkimage, opts: CreateOptions{Force: true}},
		{
			name:    "half-made image without force",
			prepare: func(t *testing.T, dir string) { mkdir(t, dir); write(t, filepath.Join(dir, MetaFile+".new")) },
			errno:   syscall.EEXIST, want: "use --force",
		},
		{
			name:    "half-made image with force",
			prepare: func(t *testing.T, dir string) { mkdir(t, dir); write(t, filepath.Join(dir, DataFile)) },
			opts:    CreateOptions{Force: true},
		},
		{
			name:    "foreign directory",
			prepare: func(t *testing.T, dir string) { mkimage(t, dir); write(t, filepath.Join(dir, "notes.txt")) },
			opts:    CreateOptions{Force: true},
			errno:   syscall.ENOTEMPTY, want: `directory holds "notes.txt", which is not part of an image; refusing to touch it`,
		},
		{
			name:    "file in the way",
			prepare: func(t *testing.T, dir string) { write(t, dir) },
			opts:    CreateOptions{Force: true},
			errno:   syscall.ENOTDIR, want: "exists and is not a directory",
		},
		{name: "one block", prepare: mkdir, opts: CreateOptions{Blocks: 1}, errno: syscall.EINVAL, want: "size of 1 blocks out of range"},
		{name: "too many blocks", prepare: mkdir, opts: CreateOptions{Blocks: maxBlocks + 1}, errno: syscall.EINVAL, want: "out of range"},
		{name: "unknown feature", prepare: mkdir, opts: CreateOptions{Incompat: 1 << 7}, errno: syscall.EINVAL, want: "unknown features 0x80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "img")
			tt.prepare(t, dir)
			before := listing(t, dir)
			opts := tt.opts
			if opts.Blocks == 0 {
				opts.Blocks = testBlocks
			}
			sb, err := Create(dir, opts)
			if tt.errno != 0 {
				if !errors.Is(err, tt.errno) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("Create: %v, want %v containing %q and the path", err, tt.errno, tt.want)
				}
				if after := listing(t, dir); after != before {
					t.Errorf("a refused Create changed %s: %s -> %s", dir, before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if sb.Blocks != testBlocks || sb.Version != Version || sb.BlockSize != BlockSize || sb.UUID == ([16]byte{}) {
				t.Errorf("superblock %+v", sb)
			}
			if got := listing(t, dir); got != "data meta.db" {
				t.Errorf("image holds %s", got)
			}
			img := openImage(t, dir, true)
			if img.SB != sb {
				t.Errorf("opened superblock %+v, created %+v", img.SB, sb)
			}
			rep, err := Check(img, CheckOptions{})
			if err != nil || len(rep.Findings) != 0 {
				t.Errorf("Check of a new image: %v\n%s", err, findings(rep))
			}
		})
	}
}

func TestCreateForceReplaces(t *testing.T) {
	dir := testImage(t)
	old := readSB(t, dir)
	sb, err := Create(dir, CreateOptions{Blocks: 2 * testBlocks, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if sb.UUID == old.UUID {
		t.Error("the new image has the old one's UUID")
	}
	img := openImage(t, dir, true)
	s := loadOK(t, img)
	if len(s.Inodes) != 1 || len(s.Dirents) != 0 || len(s.Extents) != 0 || img.SB.Blocks != 2*testBlocks {
		t.Errorf("replaced image holds %d inodes, %d entries, %d files with extents, %d blocks", len(s.Inodes), len(s.Dirents), len(s.Extents), img.SB.Blocks)
	}
}

func mkdir(t *testing.T, dir string) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mkimage(t *testing.T, dir string) {
	if _, err := Create(dir, CreateOptions{Blocks: testBlocks}); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string) {
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// listing describes what is at path: the names in a directory, or a file
// and its content.
func listing(t *testing.T, path string) string {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "(nothing)"
	case err != nil:
		t.Fatal(err)
	case !st.IsDir():
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return "file " + string(b)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

func TestOpenLocking(t *testing.T) {
	dir := newImage(t)
	tests := []struct {
		name          string
		first, second bool // read-only
		busy          bool
	}{
		{"two writers", false, false, true},
		{"reader while writing", false, true, true},
		{"writer while reading", true, false, true},
		{"two readers", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := openImage(t, dir, tt.first)
			second, err := Open(dir, OpenOptions{ReadOnly: tt.second})
			if !tt.busy {
				if err != nil {
					t.Fatalf("second Open: %v", err)
				}
				second.Close()
				return
			}
			if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "the image is in use by this process: unmount it (holefs umount) or close it first") {
				t.Fatalf("second Open: %v, want EBUSY naming this process and the fix", err)
			}
			first.Close()
			second = openImage(t, dir, tt.second)
			second.Close()
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) string // returns the path to open
		errno  syscall.Errno
		want   string
	}{
		{
			name:   "no such path",
			damage: func(t *testing.T, dir string) string { return dir + "x" },
			errno:  syscall.ENOENT,
		},
		{
			name:   "not a directory",
			damage: func(t *testing.T, dir string) string { return filepath.Join(dir, DataFile) },
			errno:  syscall.ENOTDIR, want: "not a directory (create an image with holefs mkfs)",
		},
		{
			name:   "data file missing",
			damage: func(t *testing.T, dir string) string { must(os.Remove(filepath.Join(dir, DataFile))); return dir },
			errno:  syscall.ENOENT,
		},
		{
			name:   "meta.db missing",
			damage: func(t *testing.T, dir string) string { must(os.Remove(filepath.Join(dir, MetaFile))); return dir },
			errno:  syscall.ENOENT,
		},
		{
			name:   "data file truncated",
			damage: func(t *testing.T, dir string) string { must(truncate(dir, 10*BlockSize)); return dir },
			errno:  syscall.EUCLEAN, want: "truncated",
		},
		{
			name:   "superblock damaged",
			damage: func(t *testing.T, dir string) string { patchData(t, dir, 30, 1); return dir },
			errno:  syscall.EUCLEAN, want: "superblock: checksum",
		},
		{
			name:   "not an image",
			damage: func(t *testing.T, dir string) string { patchData(t, dir, 0, make([]byte, BlockSize)...); return dir },
			errno:  syscall.EUCLEAN, want: "not a holefs image",
		},
		{
			name: "data and meta.db of two images",
			damage: func(t *testing.T, dir string) string {
				copyFile(t, filepath.Join(newImage(t), MetaFile), filepath.Join(dir, MetaFile))
				return dir
			},
			errno: syscall.EUCLEAN, want: "the files of two images are mixed",
		},
		{
			name: "meta.db not a database",
			damage: func(t *testing.T, dir string) string {
				must(os.WriteFile(filepath.Join(dir, MetaFile), make([]byte, 8192), 0o600))
				return dir
			},
			errno: syscall.EUCLEAN, want: MetaFile,
		},
		{
			name: "bucket missing",
			damage: func(t *testing.T, dir string) string {
				raw(t, dir, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte(bucketExtents)) })
				return dir
			},
			errno: syscall.EUCLEAN, want: `bucket "extents" is missing`,
		},
		{
			name: "unknown incompatible feature",
			damage: func(t *testing.T, dir string) string {
				sb := readSB(t, dir)
				sb.Incompat |= 1 << 33
				patchData(t, dir, 0, sb.Encode()...)
				raw(t, dir, func(tx *bbolt.Tx) error {
					return tx.Bucket([]byte(bucketSuper)).Put([]byte(keySB), sb.Encode()[:superblockSize])
				})
				return dir
			},
			errno: syscall.EOPNOTSUPP, want: "image uses incompatible features 0x200000000 this holefs does not know; use a newer holefs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.damage(t, newImage(t))
			for _, ro := range []bool{true, false} {
				img, err := Open(path, OpenOptions{ReadOnly: ro})
				if err == nil {
					img.Close()
					t.Fatalf("Open(read-only %v) succeeded", ro)
				}
				if !errors.Is(err, tt.errno) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Open(read-only %v): %v, want %v containing %q", ro, err, tt.errno, tt.want)
				}
			}
		})
	}
}

// holdImage has another process open the image at dir (read-only or
// not) until the test ends, and returns its pid.
func holdImage(t *testing.T, dir string, readOnly bool) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	if readOnly {
		cmd.Env = append(cmd.Env, holdEnv+"_RO=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("holder: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "open\n" {
		t.Fatalf("holder: %q, %v; want it to open the image", line, err)
	}
	return cmd.Process.Pid
}

// TestBusyNamesHolder checks that whatever finds an image busy — Open,
// Precheck (fsck), Create replacing it (mkfs --force) — fails with EBUSY
// in one line naming the process that holds it and the fix, and that a
// reader does not keep other readers out.
func TestBusyNamesHolder(t *testing.T) {
	takers := []struct {
		name     string
		readOnly bool // takes meta.db's lock shared
		take     func(dir string) error
	}{
		{"Open", false, func(dir string) error {
			img, err := Open(dir, OpenOptions{})
			if err == nil {
				img.Close()
			}
			return err
		}},
		{"Open read-only", true, func(dir string) error {
			img, err := Open(dir, OpenOptions{ReadOnly: true})
			if err == nil {
				img.Close()
			}
			return err
		}},
		{"Precheck", true, func(dir string) error { _, err := Precheck(dir, false); return err }},
		{"Precheck repair", false, func(dir string) error { _, err := Precheck(dir, true); return err }},
		{"Create force", false, func(dir string) error {
			_, err := Create(dir, CreateOptions{Blocks: 256, Force: true})
			return err
		}},
	}
	for _, holderRO := range []bool{false, true} {
		dir := testImage(t)
		pid := holdImage(t, dir, holderRO)
		want := fmt.Sprintf("the image is in use by process %d (", pid)
		for _, tt := range takers {
			t.Run(fmt.Sprintf("%s, holder read-only %v", tt.name, holderRO), func(t *testing.T) {
				err := tt.take(dir)
				if holderRO && tt.readOnly {
					if err != nil {
						t.Fatalf("%v; want a reader to share with the holder", err)
					}
					return
				}
				if msg := fmt.Sprint(err); !errors.Is(err, syscall.EBUSY) || !strings.Contains(msg, want) ||
					!strings.HasSuffix(msg, "): unmount it (holefs umount) or close it first: "+syscall.EBUSY.Error()) ||
					strings.Contains(msg, "\n") {
					t.Fatalf("%v; want one line, EBUSY, naming %q and the fix", err, want)
				}
			})
		}
	}
}
