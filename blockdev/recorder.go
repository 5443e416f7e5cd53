package blockdev

import (
	"fmt"
	"sync"
)

// EntryKind says what a Recorder log entry records.
type EntryKind uint8

const (
	// EntryWrite is one block of a write: WriteBlocks of n blocks logs n
	// entries, one per block, because a crash may keep any of them.
	EntryWrite EntryKind = iota + 1
	// EntryFlush is a completed Flush.
	EntryFlush
	// EntryMark is a label the recorder's user put in the log (Mark).
	EntryMark
)

func (k EntryKind) String() string {
	switch k {
	case EntryWrite:
		return "write"
	case EntryFlush:
		return "flush"
	case EntryMark:
		return "mark"
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// Entry is one record of a Recorder's log. Entries are immutable once
// logged, except Done of a write, which is set when the write completes.
//
// Done and Start are readings of the recorder's clock, which ticks at
// every write completion and every flush start, so that of a write and a
// flush one is strictly first.
type Entry struct {
	Kind EntryKind
	// Block and Data (a private copy of BlockSize bytes) of an
	// EntryWrite.
	Block int64
	Data  []byte
	// Done of an EntryWrite is the clock when the write completed. It is
	// -1 while the write is in flight and stays -1 if the wrapped device
	// failed it (it may or may not have reached the disk).
	Done int64
	// Start of an EntryFlush is the clock when the flush started: the
	// flush made durable every write with 0 <= Done < Start. The flush
	// entry itself is logged when the flush completes.
	Start int64
	// Label of an EntryMark.
	Label string
}

// Recorder wraps a Device and logs every write (each block, with a copy of
// its data) and every flush, in order, passing them through — the idea of
// Linux's dm-log-writes. Replay rebuilds from the log what a crash at any
// point can leave on the disk. It is safe for concurrent use.
//
// A write is logged when it is issued and marked done when it completes,
// and a flush is logged when it completes with the time it started, so
// concurrent writes and flushes are recorded exactly: a flush makes
// durable only the writes that completed before it started.
type Recorder struct {
	d  Device
	mu sync.Mutex
	// log is append-only; the prefix handed out by Log is never
	// modified except for Done of writes still in flight.
	log   []Entry // guarded by mu
	clock int64   // guarded by mu; ticks at write completions and flush starts
}

// NewRecorder returns a Recorder wrapping d with an empty log. Closing it
// closes d.
func NewRecorder(d Device) *Recorder { return &Recorder{d: d} }

// ReadBlocks reads from the wrapped device; reads are not logged.
func (r *Recorder) ReadBlocks(p []byte, block int64) error { return r.d.ReadBlocks(p, block) }

// WriteBlocks logs p, one entry per block, and writes it to the wrapped
// device. An invalid request is refused, and not logged, before it
// reaches the device.
func (r *Recorder) WriteBlocks(p []byte, block int64) error {
	n, err := checkIO("write", p, block, r.d.NumBlocks())
	if err != nil {
		return err
	}
	r.mu.Lock()
	first := len(r.log)
	for i := range n {
		r.log = append(r.log, Entry{Kind: EntryWrite, Block: block + i,
			Data: append([]byte(nil), p[i*BlockSize:(i+1)*BlockSize]...), Done: -1})
	}
	r.mu.Unlock()
	if err := r.d.WriteBlocks(p, block); err != nil {
		return err
	}
	r.mu.Lock()
	r.clock++
	for i := range n {
		r.log[first+int(i)].Done = r.clock
	}
	r.mu.Unlock()
	return nil
}

// Flush flushes the wrapped device and, if that succeeds, logs it.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	r.clock++
	start := r.clock
	r.mu.Unlock()
	if err := r.d.Flush(); err != nil {
		return err
	}
	r.mu.Lock()
	r.log = append(r.log, Entry{Kind: EntryFlush, Start: start})
	r.mu.Unlock()
	return nil
}

// Mark appends a label to the log (dm-log-writes' mark) and returns its
// index, so that a test can tell which writes came before an event of its
// own: a crash "after entry i" happened after every mark at or before i.
func (r *Recorder) Mark(label string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, Entry{Kind: EntryMark, Label: label})
	return len(r.log) - 1
}

// Len returns the number of entries logged so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

// Log returns a copy of the log. Call it when no I/O is in flight to get
// every write's final Done.
func (r *Recorder) Log() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Entry(nil), r.log...)
}

// NumBlocks returns the wrapped device's size in blocks.
func (r *Recorder) NumBlocks() int64 { return r.d.NumBlocks() }

// Close closes the wrapped device. The log stays readable.
func (r *Recorder) Close() error { return r.d.Close() }

// Unflushed returns the indexes of the writes among the first n entries
// of log that a crash right after them may or may not have kept: those
// that did not complete before a flush among them started. The others
// are durable.
func Unflushed(log []Entry, n int) []int {
	start := flushed(log, n)
	var u []int
	for i, e := range log[:n] {
		if e.Kind == EntryWrite && (e.Done < 0 || e.Done >= start) {
			u = append(u, i)
		}
	}
	return u
}

// flushed returns the Start of the latest flush among the first n entries
// of log (0 if none).
func flushed(log []Entry, n int) int64 {
	start := int64(0)
	for _, e := range log[:n] {
		if e.Kind == EntryFlush {
			start = max(start, e.Start)
		}
	}
	return start
}

// Replay writes to dev what a crash after the first n entries of log can
// leave on the disk that was recorded: every write the flushes among them
// made durable, and of the other writes among them those keep accepts,
// in log order (for one block the last write applied wins). dev must hold
// the disk's content from before the recording started.
//
// The model of the disk is that of a volatile write cache: a flush makes
// the writes completed before it durable, and writes not yet flushed may
// reach the disk in any order, each or not, so any subset can survive a
// crash. A 4 KiB block is assumed to be written atomically (no torn
// blocks): keep chooses whole blocks.
func Replay(dev Device, log []Entry, n int, keep func(i int) bool) error {
	start := flushed(log, n)
	for i, e := range log[:n] {
		if e.Kind != EntryWrite {
			continue
		}
		if (e.Done < 0 || e.Done >= start) && !keep(i) {
			continue
		}
		if err := dev.WriteBlocks(e.Data, e.Block); err != nil {
			return fmt.Errorf("blockdev: replay of entry %d: %w", i, err)
		}
	}
	return nil
}
