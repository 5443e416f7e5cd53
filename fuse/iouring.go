package fuse

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The small part of io_uring FUSE over io_uring needs, on the raw system
// calls: no Go io_uring library is vendored. Layouts and constants are
// Linux's include/uapi/linux/io_uring.h.
const (
	ioringSetupSQE128   = 1 << 10 // IORING_SETUP_SQE128: 128-byte SQEs, the command area FUSE's request needs
	ioringFeatSingleMap = 1 << 0  // IORING_FEAT_SINGLE_MMAP: SQ and CQ rings share one mapping
	ioringEnterGetevent = 1 << 0  // IORING_ENTER_GETEVENTS
	ioringOpNop         = 0       // IORING_OP_NOP
	ioringOpURingCmd    = 46      // IORING_OP_URING_CMD
	ioringOffSQRing     = 0
	ioringOffCQRing     = 0x8000000
	ioringOffSQEs       = 0x10000000
	sqeSize             = 128 // with IORING_SETUP_SQE128
	cqeSize             = 16
	sqeCmdOff           = 48 // the command area of a 128-byte SQE
)

// ioURingParams is struct io_uring_params.
type ioURingParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// ioURing is one io_uring instance with 128-byte SQEs. Submissions are
// serialized by the caller; completions are reaped by one goroutine.
type ioURing struct {
	fd             int
	sqRing, cqRing []byte // mappings (the same one with IORING_FEAT_SINGLE_MMAP)
	sqes           []byte
	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []byte
	sqEntries      uint32
	local          uint32 // the SQ tail this process has filled up to; +checklocks:ringQueue.mu (sqe, publish)
}

// newIOURing sets up a ring of entries submissions (a power of two).
func newIOURing(entries uint32) (*ioURing, error) {
	var p ioURingParams
	p.flags = ioringSetupSQE128
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &ioURing{fd: int(fd), sqEntries: p.sqEntries}
	sqLen := int(p.sqOff.array + p.sqEntries*4)
	cqLen := int(p.cqOff.cqes + p.cqEntries*cqeSize)
	single := p.features&ioringFeatSingleMap != 0
	if single {
		sqLen = max(sqLen, cqLen)
	}
	var err error
	if r.sqRing, err = unix.Mmap(r.fd, ioringOffSQRing, sqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("mmap io_uring SQ ring: %w", err)
	}
	r.cqRing = r.sqRing
	if !single {
		if r.cqRing, err = unix.Mmap(r.fd, ioringOffCQRing, cqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			r.close()
			return nil, fmt.Errorf("mmap io_uring CQ ring: %w", err)
		}
	}
	if r.sqes, err = unix.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	r.sqHead = (*uint32)(unsafe.Pointer(&r.sqRing[p.sqOff.head]))
	r.sqTail = (*uint32)(unsafe.Pointer(&r.sqRing[p.sqOff.tail]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&r.sqRing[p.sqOff.ringMask]))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Pointer(&r.sqRing[p.sqOff.array])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Pointer(&r.cqRing[p.cqOff.head]))
	r.cqTail = (*uint32)(unsafe.Pointer(&r.cqRing[p.cqOff.tail]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&r.cqRing[p.cqOff.ringMask]))
	r.cqes = r.cqRing[p.cqOff.cqes : p.cqOff.cqes+p.cqEntries*cqeSize]
	r.local = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// sqe returns the next free SQE, zeroed, or nil when the SQ is full.
// The caller fills it, publishes it and calls enter.
func (r *ioURing) sqe() []byte {
	if r.local-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return nil
	}
	i := r.local & r.sqMask
	s := r.sqes[int(i)*sqeSize : int(i+1)*sqeSize]
	clear(s)
	r.sqArray[i] = i
	r.local++
	return s
}

// publish makes the SQEs filled since the last call visible to the
// kernel, under the same lock as sqe. The store to the tail is a release:
// the kernel sees the SQEs' contents before the tail.
func (r *ioURing) publish() { atomic.StoreUint32(r.sqTail, r.local) }

// enter hands every published SQE not yet consumed to the kernel; with
// wait, it also waits for a completion unless one is ready. The count it
// passes must be exact: io_uring_enter skips the wait when it submitted
// fewer SQEs than asked. Calls from two threads at once may each count
// the same SQEs; the one that finds them gone returns without waiting,
// and its caller looks again.
func (r *ioURing) enter(wait bool) error {
	for {
		var minComplete, flags uintptr
		if wait && *r.cqHead == atomic.LoadUint32(r.cqTail) {
			minComplete, flags = 1, ioringEnterGetevent
		}
		n := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), minComplete, flags, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR, unix.EAGAIN, unix.EBUSY:
			continue
		}
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
}

// cqe is one completion.
type cqe struct {
	userData uint64
	res      int32
}

// reap appends the completions ready, without waiting, to cs.
func (r *ioURing) reap(cs []cqe) []cqe {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail) // acquire: the CQEs' contents are visible
	for ; head != tail; head++ {
		c := r.cqes[int(head&r.cqMask)*cqeSize:]
		cs = append(cs, cqe{userData: *(*uint64)(unsafe.Pointer(&c[0])), res: *(*int32)(unsafe.Pointer(&c[8]))})
	}
	atomic.StoreUint32(r.cqHead, head) // release: the kernel may reuse the slots
	return cs
}

// close unmaps the rings and closes the instance; the kernel cancels the
// commands still pending on it.
func (r *ioURing) close() {
	if r.sqes != nil {
		_ = unix.Munmap(r.sqes)
	}
	if r.cqRing != nil && &r.cqRing[0] != &r.sqRing[0] {
		_ = unix.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		_ = unix.Munmap(r.sqRing)
	}
	_ = unix.Close(r.fd)
}
