package holefs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// The corruption sweep damages a small image one byte (or bit) at a time
// — every byte of meta.db, every bit of its two meta pages, every byte of
// the data file's block 0 — and for each damage runs fsck (as holefs fsck
// does) and Open in-process. Nothing may panic or crash; no case may be a
// silent loss (fsck clean, Open fine, and the last file written, fsync'd
// and closed missing or different); every case is classified. With
// HOLEFS_SWEEP=full (4 to 7 minutes on 2 busy cores) it runs every case;
// otherwise every sweepStride-th (meta page bits: every
// sweepMetaStride-th), from an offset that changes per run: about 10 s
// under -race.

// sweepStride samples the sweep in short runs; the meta pages' bits,
// where a rollback hides, more densely.
const (
	sweepStride     = 61
	sweepMetaStride = 7
)

// sweepCase is one damage: a byte of a file XORed with a mask.
type sweepCase struct {
	file string // meta.MetaFile or meta.DataFile
	off  int64
	mask byte
	bit  bool // a meta page bit
}

func (c sweepCase) String() string { return fmt.Sprintf("%s byte %d ^ %#02x", c.file, c.off, c.mask) }

// Outcomes of a case.
const (
	outNoEffect = "no effect"      // fsck clean, Open fine, the files intact
	outDetected = "error detected" // fsck reports an error or Open refuses, and fsck --repair cannot make it open intact
	outRepaired = "repaired"       // detected, and after fsck --repair Open finds the files intact
)

func TestCorruptionSweep(t *testing.T) {
	base := filepath.Join(t.TempDir(), "img")
	if err := holefs.Mkfs(base, holefs.MkfsOptions{SizeBytes: 64 * meta.BlockSize}); err != nil {
		t.Fatal(err)
	}
	files := sweepImage(t, base)
	orig := map[string][]byte{}
	for _, name := range []string{meta.MetaFile, meta.DataFile} {
		b, err := os.ReadFile(filepath.Join(base, name))
		must(t, err)
		orig[name] = b
	}
	var cases []sweepCase
	for off := range int64(len(orig[meta.MetaFile])) {
		cases = append(cases, sweepCase{meta.MetaFile, off, 0xff, false})
	}
	// The meta pages bit by bit: the checksummed meta is in the first 80
	// bytes of each page; the rest of the page is unused.
	for _, page := range []int64{0, int64(os.Getpagesize())} {
		for off := page; off < page+80; off++ {
			for bit := range 8 {
				cases = append(cases, sweepCase{meta.MetaFile, off, 1 << bit, true})
			}
		}
	}
	for off := range int64(meta.BlockSize) {
		cases = append(cases, sweepCase{meta.DataFile, off, 0xff, false})
	}
	full := os.Getenv("HOLEFS_SWEEP") == "full"
	start, stride, metaStride := 0, 1, 1
	if !full {
		stride, metaStride = sweepStride, sweepMetaStride
		start = int(time.Now().UnixNano() % sweepStride)
		if testing.Short() {
			stride, metaStride = stride*8, metaStride*8
		}
	}
	dir := filepath.Join(t.TempDir(), "case")
	counts := map[string]int{}
	byFile := map[string]map[string]int{meta.MetaFile: {}, meta.DataFile: {}}
	longest := 0
	n := 0
	for i, c := range cases {
		if s := map[bool]int{false: stride, true: metaStride}[c.bit]; (i+start)%s != 0 {
			continue
		}
		n++
		resetImage(t, dir, orig, c)
		out, msgs, err := runCase(dir, files)
		for _, m := range msgs {
			if len(m) > longest {
				longest = len(m)
			}
			if len(m) > 1024 || strings.Contains(m, "\n") {
				t.Errorf("%v: message of %d bytes, not one bounded line: %.200q", c, len(m), m)
			}
		}
		if err != nil {
			t.Errorf("%v: %v", c, err)
			continue
		}
		counts[out]++
		byFile[c.file][out]++
	}
	t.Logf("%d of %d cases (stride %d, meta page bits %d, from %d): %d %s, %d %s, %d %s; meta.db %v, block 0 %v; longest message %d bytes",
		n, len(cases), stride, metaStride, start, counts[outNoEffect], outNoEffect, counts[outDetected], outDetected,
		counts[outRepaired], outRepaired, byFile[meta.MetaFile], byFile[meta.DataFile], longest)
}

// sweepImage fills the image: a directory and a few files, then, last, a
// file written, fsync'd and closed — the commit a meta.db falling back to
// its previous meta page loses. It returns the files and their contents.
func sweepImage(t *testing.T, dir string) map[string][]byte {
	fsys := openImage(t, dir)
	files := map[string][]byte{
		"d/a":  bytes.Repeat([]byte("a"), 5000),
		"d/b":  []byte("bee"),
		"c":    bytes.Repeat([]byte("c"), 3*meta.BlockSize),
		"last": bytes.Repeat([]byte("fsync'd last\n"), 400),
	}
	must(t, fsys.Mkdir("d", 0o755))
	for _, name := range []string{"d/a", "d/b", "c"} {
		writeFile(t, fsys, name, files[name], false)
	}
	must(t, fsys.Sync())
	writeFile(t, fsys, "last", files["last"], true)
	must(t, fsys.Close())
	return files
}

// resetImage writes the undamaged image to dir with damage c, in new
// files: a case that left a lock behind must not fail the next ones.
func resetImage(t *testing.T, dir string, orig map[string][]byte, c sweepCase) {
	must(t, os.RemoveAll(dir))
	must(t, os.MkdirAll(dir, 0o755))
	for name, b := range orig {
		if name == c.file {
			b = bytes.Clone(b)
			b[c.off] ^= c.mask
		}
		must(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
}

// runCase checks, opens and if need be repairs the damaged image at dir.
// It returns the outcome and every message it saw; an error is a panic or
// a silent loss.
func runCase(dir string, files map[string][]byte) (out string, msgs []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %.300v", r)
		}
	}()
	clean, msgs := sweepFsck(dir, false)
	lost, openErr := openAndRead(dir, files)
	if openErr != nil {
		msgs = append(msgs, openErr.Error())
	}
	switch {
	case clean && openErr == nil && lost == "":
		return outNoEffect, msgs, nil
	case clean && openErr == nil:
		return "", msgs, fmt.Errorf("silent loss: fsck clean, Open fine, %s", lost)
	}
	_, rmsgs := sweepFsck(dir, true)
	msgs = append(msgs, rmsgs...)
	if clean, _ := sweepFsck(dir, false); clean {
		if lost, err := openAndRead(dir, files); err == nil && lost == "" {
			return outRepaired, msgs, nil
		}
	}
	return outDetected, msgs, nil
}

// sweepFsck runs fsck as holefs fsck does (Precheck when Open finds the
// superblocks or the store damaged). clean: no error found or left.
func sweepFsck(dir string, repair bool) (clean bool, msgs []string) {
	img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: !repair})
	var left int
	if errors.Is(err, syscall.EUCLEAN) {
		msgs = append(msgs, err.Error())
		var rb *meta.RollbackError
		if errors.As(err, &rb) {
			img, err = meta.Open(dir, meta.OpenOptions{ReadOnly: true})
			repair = false
		} else {
			pre, perr := meta.Precheck(dir, repair)
			if perr != nil {
				return false, append(msgs, perr.Error())
			}
			for _, f := range pre {
				msgs = append(msgs, f.String())
				if f.Severity == meta.Error && !f.Fixed {
					left++
				}
			}
			if left > 0 {
				return false, msgs
			}
			img, err = meta.Open(dir, meta.OpenOptions{ReadOnly: !repair})
		}
	}
	if err != nil {
		return false, append(msgs, err.Error())
	}
	defer img.Close()
	check := meta.Check
	if repair {
		check = meta.Repair
	}
	rep, err := check(img, meta.CheckOptions{})
	if err != nil {
		return false, append(msgs, err.Error())
	}
	for _, f := range rep.Findings {
		msgs = append(msgs, f.String())
	}
	_, left = rep.Errors()
	return left == 0 && err == nil, msgs
}

// openAndRead opens the image and reads every file, returning what is
// missing or different ("" if nothing).
func openAndRead(dir string, files map[string][]byte) (string, error) {
	fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1})
	if err != nil {
		return "", err
	}
	var lost []string
	for name, want := range files {
		got, err := fsys.ReadFile(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			lost = append(lost, name+" is missing")
		case err != nil:
			lost = append(lost, name+": "+err.Error())
		case !bytes.Equal(got, want):
			lost = append(lost, name+" differs")
		}
	}
	if err := fsys.Close(); err != nil {
		return "", err
	}
	return strings.Join(lost, ", "), nil
}

// TestOpenRollback: an image whose newer meta page is damaged (bbolt would
// fall back to the commit before the last fsync) is refused with one line
// naming the commits; Options.AcceptRollback opens it without the lost
// file, and from then on it opens as usual. (An image with a log replays
// the lost commit from it instead: TestWALHealsMetaFallback.)
func TestOpenRollback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	must(t, holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: 64 * meta.BlockSize, NoLog: true}))
	commitTwoAndDamageNewerMetaPage(t, dir)

	_, err := holefs.Open(dir, holefs.Options{})
	if !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), "rolled back from commit") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open: %v; want one EUCLEAN line naming the rollback", err)
	}
	fsys, err := holefs.Open(dir, holefs.Options{AcceptRollback: true})
	must(t, err)
	if _, err := fsys.Stat("last"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("last after the rollback: %v; want it gone", err)
	}
	if b, err := fsys.ReadFile("kept"); err != nil || string(b) != "kept" {
		t.Errorf("kept: %q, %v", b, err)
	}
	must(t, fsys.Close())
	fsys = openImage(t, dir)
	must(t, fsys.Close())
}

// commitTwoAndDamageNewerMetaPage fsyncs files "kept" and then "last" in
// the image at dir, closes it, and garbles the checksum of meta.db's newer
// meta page, so that bbolt falls back to the older one.
func commitTwoAndDamageNewerMetaPage(t *testing.T, dir string) {
	t.Helper()
	fsys := openImage(t, dir)
	writeFile(t, fsys, "kept", []byte("kept"), true)
	writeFile(t, fsys, "last", []byte("fsync'd last"), true)
	must(t, fsys.Close())
	mf, err := os.OpenFile(filepath.Join(dir, meta.MetaFile), os.O_RDWR, 0)
	must(t, err)
	ps := int64(os.Getpagesize())
	var txid [2]uint64
	for i := range txid {
		var b [8]byte
		_, err := mf.ReadAt(b[:], int64(i)*ps+16+48)
		must(t, err)
		txid[i] = binary.NativeEndian.Uint64(b[:])
	}
	newer := int64(0)
	if txid[1] > txid[0] {
		newer = 1
	}
	_, err = mf.WriteAt([]byte{0x5a}, newer*ps+16+60)
	must(t, err)
	must(t, mf.Close())
}
