package blockdev_test

import (
	"bytes"
	"errors"
	"slices"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
)

var _ blockdev.Device = (*blockdev.Recorder)(nil)

// fill returns n blocks, block i filled with byte v+i.
func fill(v byte, n int) []byte {
	p := make([]byte, n*blockdev.BlockSize)
	for i := range n {
		for j := range blockdev.BlockSize {
			p[i*blockdev.BlockSize+j] = v + byte(i)
		}
	}
	return p
}

// content returns the first byte of each of the first n blocks of d.
func content(t *testing.T, d blockdev.Device, n int) []byte {
	t.Helper()
	p := make([]byte, n*blockdev.BlockSize)
	if err := d.ReadBlocks(p, 0); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, n)
	for i := range n {
		out[i] = p[i*blockdev.BlockSize]
	}
	return out
}

func TestRecorderReplay(t *testing.T) {
	mem := blockdev.NewMemory(8)
	r := blockdev.NewRecorder(mem)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.WriteBlocks(fill(10, 2), 0)) // entries 0, 1: blocks 0 and 1
	if i := r.Mark("after the first write"); i != 2 {
		t.Fatalf("mark at %d, want 2", i)
	}
	must(r.Flush())                     // entry 3
	must(r.WriteBlocks(fill(20, 1), 1)) // entry 4: block 1 again
	must(r.WriteBlocks(fill(30, 1), 2)) // entry 5
	must(r.Flush())                     // entry 6
	must(r.WriteBlocks(fill(40, 1), 2)) // entry 7
	if r.Len() != 8 {
		t.Fatalf("log length %d, want 8", r.Len())
	}
	if got := content(t, mem, 3); !bytes.Equal(got, []byte{10, 20, 40}) {
		t.Fatalf("the device holds %v: the recorder must pass writes through", got)
	}
	log := r.Log()
	for _, tc := range []struct {
		n    int
		want []int
	}{{2, []int{0, 1}}, {3, []int{0, 1}}, {4, nil}, {6, []int{4, 5}}, {7, nil}, {8, []int{7}}} {
		if got := blockdev.Unflushed(log, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("Unflushed(log, %d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	tests := []struct {
		n    int
		keep []int // log indexes of unflushed writes kept
		want []byte
	}{
		{0, nil, []byte{0, 0, 0}},
		{2, nil, []byte{0, 0, 0}},         // nothing flushed yet
		{2, []int{1}, []byte{0, 11, 0}},   // one block of a two-block write: no atomicity across blocks
		{3, nil, []byte{0, 0, 0}},         // the flush has not completed at 3
		{4, nil, []byte{10, 11, 0}},       // it has at 4
		{6, nil, []byte{10, 11, 0}},       // entries 4 and 5 unflushed
		{6, []int{5}, []byte{10, 11, 30}}, // any subset of them
		{6, []int{4, 5}, []byte{10, 20, 30}},
		{7, nil, []byte{10, 20, 30}},
		{8, nil, []byte{10, 20, 30}},
		{8, []int{7}, []byte{10, 20, 40}}, // the last write of a block wins
	}
	for _, tc := range tests {
		dst := blockdev.NewMemory(8)
		keep := map[int]bool{}
		for _, i := range tc.keep {
			keep[i] = true
		}
		must(blockdev.Replay(dst, log, tc.n, func(i int) bool {
			if log[i].Kind != blockdev.EntryWrite {
				t.Errorf("keep asked about entry %d, a %v", i, log[i].Kind)
			}
			return keep[i]
		}))
		if got := content(t, dst, 3); !bytes.Equal(got, tc.want) {
			t.Errorf("replay of %d entries keeping %v: blocks start %v, want %v", tc.n, tc.keep, got, tc.want)
		}
	}
}

// gatedDevice blocks writes until their gate is released, to order a
// flush against a write in flight.
type gatedDevice struct {
	blockdev.Device
	entered, release chan struct{}
}

func (g *gatedDevice) WriteBlocks(p []byte, block int64) error {
	g.entered <- struct{}{}
	<-g.release
	return g.Device.WriteBlocks(p, block)
}

// TestRecorderFlushDuringWrite: a flush makes durable only the writes
// that completed before it started; one in flight stays unflushed.
func TestRecorderFlushDuringWrite(t *testing.T) {
	g := &gatedDevice{Device: blockdev.NewMemory(4), entered: make(chan struct{}), release: make(chan struct{})}
	r := blockdev.NewRecorder(g)
	done := make(chan error)
	go func() { done <- r.WriteBlocks(fill(7, 1), 0) }()
	<-g.entered // logged as entry 0, in flight
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log := r.Log()
	if len(log) != 2 || log[0].Kind != blockdev.EntryWrite || log[1].Kind != blockdev.EntryFlush {
		t.Fatalf("log %+v, want a write and a flush", log)
	}
	if log[0].Done <= log[1].Start {
		t.Fatalf("write done at %d, flush started at %d: the flush started first", log[0].Done, log[1].Start)
	}
	if u := blockdev.Unflushed(log, 2); len(u) != 1 || u[0] != 0 {
		t.Fatalf("Unflushed = %v: a write in flight when the flush started must not be durable", u)
	}
	for _, keep := range []bool{false, true} {
		dst := blockdev.NewMemory(4)
		if err := blockdev.Replay(dst, log, 2, func(int) bool { return keep }); err != nil {
			t.Fatal(err)
		}
		if got := content(t, dst, 1)[0]; got != map[bool]byte{false: 0, true: 7}[keep] {
			t.Errorf("keep=%v: block 0 starts %d", keep, got)
		}
	}
}

// TestRecorderErrors: a refused write is not logged; a write the device
// fails is logged but never durable; a failed flush is not logged.
func TestRecorderErrors(t *testing.T) {
	f := blockdev.NewFaulty(blockdev.NewMemory(4), blockdev.FaultOptions{})
	r := blockdev.NewRecorder(f)
	if err := r.WriteBlocks(make([]byte, 100), 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("short write: %v, want EINVAL", err)
	}
	if err := r.WriteBlocks(fill(1, 1), 4); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("write past the end: %v, want EINVAL", err)
	}
	f.FailWrite(1, syscall.EIO)
	if err := r.WriteBlocks(fill(1, 2), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("failed write: %v, want EIO", err)
	}
	f.FailFlush(syscall.EIO)
	if err := r.Flush(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("failed flush: %v, want EIO", err)
	}
	f.Clear()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	log := r.Log()
	if len(log) != 3 || log[0].Done != -1 || log[1].Done != -1 || log[2].Kind != blockdev.EntryFlush {
		t.Fatalf("log %+v, want two failed block writes and one flush", log)
	}
	dst := blockdev.NewMemory(4)
	if err := blockdev.Replay(dst, log, 3, func(int) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if got := content(t, dst, 2); !bytes.Equal(got, []byte{0, 0}) {
		t.Errorf("a failed write was made durable by a later flush: blocks start %v", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
