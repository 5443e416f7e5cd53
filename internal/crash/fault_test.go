package crash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// scratch returns a directory for images, on /dev/shm when there is one:
// every commit fsyncs, which a disk makes slow.
func scratch(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "holefs-crash-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// TestFaults fails every device operation of workloads in turn with EIO:
// that one only, or it and every one after it; on images without and with
// data checksums.
func TestFaults(t *testing.T) {
	for _, cfg := range []FaultConfig{
		{Seed: 1, Ops: 80},
		{Seed: 1, Ops: 80, Transient: true},
		{Seed: 2, Ops: 80, DataChecksums: true},
		{Seed: 2, Ops: 80, Transient: true, DataChecksums: true},
	} {
		cfg.Dir = scratch(t)
		rep, err := RunFaults(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d, transient %v, data checksums %v: %d device ops, %d runs, the fault fired in %d, %d op errors, %v",
			cfg.Seed, cfg.Transient, cfg.DataChecksums, rep.DeviceOps, rep.Runs, rep.Fired, rep.OpErrors, rep.Elapsed)
		for _, v := range rep.Violations {
			t.Error(v)
		}
		if rep.DeviceOps < 20 || rep.Fired < int(rep.DeviceOps) || rep.OpErrors == 0 {
			t.Errorf("seed %d: the workload did too little: %+v", cfg.Seed, rep)
		}
	}
}

// TestFaultReclaimIsEIO: a write that needs quarantined blocks forces a
// commit; when the device fails that commit, the write must fail with
// EIO, not with ENOSPC (the space exists; deleting files would not help).
func TestFaultReclaimIsEIO(t *testing.T) {
	dir := filepath.Join(scratch(t), "img")
	if err := holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: 24 * BlockSize}); err != nil {
		t.Fatal(err)
	}
	var dev *blockdev.Faulty
	fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1,
		WrapDevice: func(d blockdev.Device) blockdev.Device {
			dev = blockdev.NewFaulty(d, blockdev.FaultOptions{})
			return dev
		}})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, blocks int) error {
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		st, _ := f.Stat()
		_, err = f.WriteAt(bytes.Repeat([]byte{'x'}, blocks*BlockSize), st.Size())
		return errors.Join(err, f.Close())
	}
	if err := write("a", 12); err != nil {
		t.Fatal(err)
	}
	if err := write("b", 4); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("a"); err != nil { // 12 blocks to quarantine
		t.Fatal(err)
	}
	dev.FailAfter(0, syscall.EIO)
	// 23 data blocks: 4 owned, 12 quarantined, 7 free.
	if err := write("b", 12); !errors.Is(err, syscall.EIO) {
		t.Errorf("write needing quarantined blocks with a failing device: %v, want EIO", err)
	}
	if err := fsys.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("close with a failing device: %v, want EIO", err)
	}
}

// TestENOSPC fills a small image until writes, O_DIRECT writes and
// fallocate fail with ENOSPC, then frees a file (its blocks wait in
// quarantine, and the next allocation forces the commit that releases
// them). Every error must be ENOSPC, every fsynced file intact, and the
// image fsck clean; every crash state of the run is checked too.
func TestENOSPC(t *testing.T) {
	script := []op{}
	for i, name := range []string{"a0", "a1", "a2", "a3", "a4", "a5"} {
		id := uint64(i + 1)
		script = append(script, op{kind: opCreate, id: id, path: name}, op{kind: opWrite, id: id, n: 5}, op{kind: opFsync, id: id})
	}
	full := []op{ // 31 data blocks, 30 in use
		{kind: opCreate, id: 7, path: "d/b0"},
		{kind: opWrite, id: 7, n: 4},
		{kind: opDirect, id: 7, n: 4},
		{kind: opFalloc, id: 7, n: 4},
		{kind: opFalloc, id: 7, n: 4, keep: true},
		{kind: opFsync, id: 7},
		{kind: opUnlink, path: "a0"},
		{kind: opClose, id: 1},
		{kind: opWrite, id: 7, n: 4},
		{kind: opFsync, id: 7},
	}
	script = append(script, full...)
	enospc := func(err error) bool { return errors.Is(err, syscall.ENOSPC) }

	root := scratch(t)
	template := filepath.Join(root, "template")
	if err := holefs.Mkfs(template, holefs.MkfsOptions{SizeBytes: 32 * BlockSize}); err != nil {
		t.Fatal(err)
	}
	res, err := faultRun(root, template, spec{seed: 1, script: script, expect: enospc})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.violations {
		t.Error(v)
	}
	if res.opErrors < 4 {
		t.Errorf("%d ops failed with ENOSPC, want the write, the O_DIRECT write and both fallocates", res.opErrors)
	}

	r, vs := checkScript(t, 32, false, script, enospc)
	for _, v := range vs {
		t.Error(v)
	}
	for seq, o := range r.w.ops[1:] {
		if o.err != nil && !enospc(o.err) {
			t.Errorf("op %d (%v): %v, want ENOSPC", seq+1, o.op, o.err)
		}
	}
}

// TestFaultShortDirectWrite: an O_DIRECT write past EOF that fails after
// some of its extents reached the device reports them written, so the
// file must grow to cover them; otherwise they are written blocks past
// EOF (fsck warns), which a later truncate up would expose.
func TestFaultShortDirectWrite(t *testing.T) {
	dir := filepath.Join(scratch(t), "img")
	if err := holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: 64 * BlockSize}); err != nil {
		t.Fatal(err)
	}
	var dev *blockdev.Faulty
	fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1,
		WrapDevice: func(d blockdev.Device) blockdev.Device {
			dev = blockdev.NewFaulty(d, blockdev.FaultOptions{})
			return dev
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	open := func(name string) *holefs.File {
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	block := bytes.Repeat([]byte{'x'}, BlockSize)
	// a's page 0 takes block 1, f0 to f5 blocks 2 to 7; freeing f0, f2
	// and f4 leaves blocks 2, 4 and 6 free alone, so a's pages 1 and 2
	// get two extents: two device writes.
	a := open("a")
	fs := []*holefs.File{a}
	for i := range 6 {
		fs = append(fs, open(fmt.Sprint("f", i)))
	}
	for _, f := range fs {
		if _, err := f.WriteAt(block, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []*holefs.File{fs[1], fs[3], fs[5]} {
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.Sync(); err != nil { // the quarantine lets the blocks go
		t.Fatal(err)
	}
	dev.FailAfter(1, syscall.EIO)
	n, err := a.WriteAt(bytes.Repeat(block, 2), BlockSize)
	dev.Clear()
	if !errors.Is(err, syscall.EIO) || n != BlockSize {
		t.Fatalf("direct write of 2 blocks, the second failing: %d bytes, %v; want %d and EIO", n, err, BlockSize)
	}
	st, err := a.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(2 * BlockSize); st.Size() != want {
		t.Errorf("size %d after a short direct write reported %d bytes written at %d: want %d", st.Size(), n, BlockSize, want)
	}
}
