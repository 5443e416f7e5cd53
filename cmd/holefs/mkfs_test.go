package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holefs/holefs"
)

func TestMkfs(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, img string)
		args    []string // IMG is replaced by the image path
		code    int
		stdout  []string
		stderr  string
	}{
		{name: "default size", args: []string{"mkfs", "IMG"},
			stdout: []string{"made holefs image IMG\n", "size      64 GiB: 16777216 blocks of 4096 bytes", "uuid      ", "features  reflink, special-files, wal, commit-record\n", "log       4 MiB: 1024 blocks", "format    version 1"}},
		{name: "flags after the path", args: []string{"mkfs", "IMG", "--size", "1M", "--data-checksums"},
			stdout: []string{"1 MiB: 256 blocks of 4096 bytes", "features  data-checksums"}},
		{name: "flags before the path", args: []string{"mkfs", "--size=2G", "--block-size", "4096", "IMG"},
			stdout: []string{"2 GiB: 524288 blocks"}},
		{name: "no log", args: []string{"mkfs", "IMG", "--size", "1M", "--no-log"},
			stdout: []string{"features  reflink, special-files, commit-record\n"}},
		{name: "log size", args: []string{"mkfs", "IMG", "--size", "1M", "--log-size", "64K"},
			stdout: []string{"log       64 KiB: 16 blocks"}},
		{name: "odd log size", args: []string{"mkfs", "IMG", "--log-size", "12K"}, code: 2,
			stderr: "holefs mkfs: --log-size: 12288 is not a positive multiple of 8192\n"},
		{name: "ext2", args: []string{"mkfs", "IMG", "--size", "1M", "--backend", "ext2"},
			stdout: []string{"1 MiB: 256 blocks of 4096 bytes", "features  special-files, ext2, commit-record\n"}},
		{name: "ext2 with data checksums", args: []string{"mkfs", "IMG", "--backend", "ext2", "--data-checksums"}, code: 1,
			stderr: "ext2 images have no data checksums: invalid argument"},
		{name: "unknown backend", args: []string{"mkfs", "IMG", "--backend", "memfs"}, code: 1,
			stderr: `images use the extentfs or ext2 backend, not "memfs": invalid argument`},
		{name: "existing image", prepare: mkfsAt, args: []string{"mkfs", "IMG", "--size", "1M"},
			code: 1, stderr: "an image exists there; use --force to replace it (its data is lost)"},
		{name: "existing image, forced", prepare: mkfsAt, args: []string{"mkfs", "--force", "IMG", "--size", "8M"},
			stdout: []string{"8 MiB: 2048 blocks"}},
		{name: "open image, forced", prepare: openAt, args: []string{"mkfs", "--force", "IMG", "--size", "8M"},
			code: 1, stderr: "holefs mkfs: mkfs IMG: the image is in use by this process: unmount it (holefs umount) or close it first: device or resource busy\n"},
		{name: "foreign directory", args: []string{"mkfs", "--force", "IMG"}, code: 1,
			prepare: func(t *testing.T, img string) { writeFile(t, filepath.Join(img, "thesis.tex")) },
			stderr:  `directory holds "thesis.tex", which is not part of an image; refusing to touch it`},
		{name: "file in the way", args: []string{"mkfs", "--force", "IMG"}, code: 1,
			prepare: func(t *testing.T, img string) { writeFile(t, img) },
			stderr:  "exists and is not a directory (an image is a directory)"},
		{name: "size not in blocks", args: []string{"mkfs", "IMG", "--size", "10000"}, code: 1,
			stderr: "size 10000 is not a multiple of 4096 of at least 2 blocks: invalid argument"},
		{name: "bad size", args: []string{"mkfs", "IMG", "--size", "lots"}, code: 2, stderr: `--size: bad byte size "lots"`},
		{name: "other block size", args: []string{"mkfs", "IMG", "--block-size", "512"}, code: 1,
			stderr: "block size 512 is not supported (holefs blocks are 4096 bytes)"},
		{name: "no path", args: []string{"mkfs", "--size", "1M"}, code: 2, stderr: "holefs mkfs: missing the image path"},
		{name: "two paths", args: []string{"mkfs", "IMG", "other"}, code: 2, stderr: `holefs mkfs: unexpected argument "other"`},
		{name: "unknown flag", args: []string{"mkfs", "IMG", "--frob"}, code: 2, stderr: "flag provided but not defined: -frob"},
		{name: "help", args: []string{"mkfs", "-h"}, stdout: []string{"Usage: holefs mkfs PATH [flags]"}},
		{name: "size 0", args: []string{"mkfs", "IMG", "--size", "0"}, code: 2,
			stderr: "holefs mkfs: --size: an image cannot have size 0 (leave --size out for the default, 64G)"},
		{name: "flags after --", args: []string{"mkfs", "--", "IMG", "--size"}, code: 2, stderr: `holefs mkfs: unexpected argument "--size"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			if tt.prepare != nil {
				tt.prepare(t, img)
			}
			var out, errb bytes.Buffer
			args := subst(tt.args, img)
			if code := run(args, &out, &errb); code != tt.code {
				t.Fatalf("%q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, tt.code, out.String(), errb.String())
			}
			for _, s := range tt.stdout {
				if s = strings.ReplaceAll(s, "IMG", img); !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			if !strings.Contains(errb.String(), strings.ReplaceAll(tt.stderr, "IMG", img)) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errb.String())
			}
			if tt.code == 1 && strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("error is not one line:\n%s", errb.String())
			}
		})
	}
}

func TestMkfsForceMakesANewImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	uuid := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := run(append([]string{"mkfs", img, "--size", "1M"}, args...), &out, &errb); code != 0 {
			t.Fatalf("mkfs: exit %d: %s", code, errb.String())
		}
		_, after, _ := strings.Cut(out.String(), "uuid      ")
		return strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
	}
	if a, b := uuid(), uuid("--force"); a == b || len(a) != 36 {
		t.Errorf("uuids %q and %q", a, b)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB",
		64 << 30: "64 GiB", 1<<40 + 1<<39: "1.5 TiB", 1 << 50: "1 PiB", 1 << 60: "1024 PiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// mkfsAt makes a 1 MiB image at img.
// openAt makes an image at img and keeps it open until the test ends.
func openAt(t *testing.T, img string) {
	mkfsAt(t, img)
	fsys, err := holefs.Open(img, holefs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsys.Close(); err != nil {
			t.Error(err)
		}
	})
}

func mkfsAt(t *testing.T, img string) { mkfsWith(t, img) }

// mkfsWith makes a 1 MiB image at img with more mkfs flags.
func mkfsWith(t *testing.T, img string, flags ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"mkfs", img, "--size", "1M"}, flags...), &out, &errb); code != 0 {
		t.Fatalf("mkfs %s: exit %d: %s", img, code, errb.String())
	}
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// subst replaces IMG in args with img.
func subst(args []string, img string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "IMG", img)
	}
	return out
}
