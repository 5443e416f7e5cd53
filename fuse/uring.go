package fuse

import (
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FUSE over io_uring, after Linux's fs/fuse/dev_uring.c and
// include/uapi/linux/fuse.h (6.14 and later). INIT, FORGET and INTERRUPT
// still come by read(2) of /dev/fuse, and notifications go by write(2);
// every other request arrives in a ring entry the server registered, and
// its reply goes back with the command that re-arms the entry.
const (
	uringCmdRegister       = 1 // FUSE_IO_URING_CMD_REGISTER
	uringCmdCommitAndFetch = 2 // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
	// struct fuse_uring_req_header: in_out[128], op_in[128], then struct
	// fuse_uring_ent_in_out {flags, commit_id u64; payload_sz, pad u32;
	// reserved u64}.
	ringInOut     = 0
	ringOpIn      = 128
	ringOpInSize  = 128
	ringPayloadSz = 256 + 16
	ringHeaderLen = 256 + 32
	ringIovOff    = 512  // where an entry's struct iovec[2] lives, in its header page
	ringHdrPage   = 4096 // an entry's headers and iovecs
	// ringEntries is how many entries each queue registers: how many
	// requests one CPU's queue serves at once. The rest wait in the
	// kernel.
	ringEntries = 16
	inHeaderLen = 40 // struct fuse_in_header
	outHdrLen   = 16 // struct fuse_out_header
	opInit      = 26 // FUSE_INIT
	// notifyInvalInode is FUSE_NOTIFY_INVAL_INODE, the error field of a
	// notification's header (its unique is 0).
	notifyInvalInode = 2
	stopTag          = ^uint64(0) // user_data of the NOP that stops a reaper
)

// ringServer serves a mount over FUSE-over-io_uring: one io_uring per
// possible CPU, as the kernel routes a request to the queue of the CPU
// its caller runs on and uses the rings only once every queue has an
// entry. Requests still arriving by /dev/fuse (INIT, FORGET, INTERRUPT,
// and any before the rings are ready) are served by a reader of the fd.
type ringServer struct {
	fd int // /dev/fuse
	// fdMu keeps the fd open while a notification is written to it.
	// Rank: a leaf, after the engine's locks (notifications are sent
	// with none held).
	fdMu     sync.RWMutex
	fdClosed bool // +checklocks:fdMu
	ps       *gofuse.ProtocolServer
	queues   []*ringQueue
	// ringServed counts the requests served through the rings, devServed
	// those that came by read(2).
	ringServed, devServed atomic.Int64
	handlers              sync.WaitGroup // requests being served
	reapers               sync.WaitGroup
	done                  chan struct{} // closed when serving ended
	bufs                  sync.Pool     // *[]byte of devBufSize, for requests read from the fd
	// registered is set once the kernel took a ring entry: from then on
	// the connection depends on the rings.
	registered bool
	devBufSize int
	mountpoint string // immutable
	// rings is set, before readDev starts, when the rings serve the
	// mount; immutable after. (queues is readDev's once it runs: it
	// closes them when the connection ends.)
	rings bool
}

// abort ends the connection after a ring failed, so that no request
// waits for it: through the mount's fusectl abort file
// (/sys/fs/fuse/connections/N/abort, N the minor number of the mount's
// device), or where fusectl is not mounted by a forced unmount, which
// aborts the connection first (Linux's fuse_umount_begin). Every request
// then fails (ECONNABORTED, ENOTCONN) and readDev sees the connection end,
// so serving stops. It says why on stderr, as go-fuse reports a failing
// /dev/fuse loop.
func (rs *ringServer) abort(cause error) {
	log.Printf("holefs: FUSE over io_uring on %s: %v; aborting the connection", rs.mountpoint, cause)
	m, ok, err := FindMount(rs.mountpoint)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not a mount point in /proc/self/mountinfo", rs.mountpoint)
	}
	if err == nil {
		err = os.WriteFile(fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(m.Dev)), []byte("1"), 0)
	}
	if err != nil {
		err = unix.Unmount(rs.mountpoint, unix.MNT_FORCE|unix.MNT_DETACH)
	}
	if err != nil {
		log.Printf("holefs: aborting the FUSE connection of %s: %v", rs.mountpoint, err)
	}
}

// ringQueue is one CPU's io_uring and its entries.
type ringQueue struct {
	rs   *ringServer
	qid  uint16
	ring *ioURing
	mem  []byte // the entries' headers and payloads, mapped outside the Go heap
	ents []ringEnt
	// early are the entries filled before the reaper started: the ring
	// is used as soon as the last queue registers. +checklocks:mu while
	// registering; then the queue's thread alone takes them, once.
	early []cqe
	// mu serializes filling SQEs and publishing them. Rank: a leaf, held
	// only around that.
	mu sync.Mutex
}

// ringEnt is one registered entry: a request buffer the kernel fills and
// the server answers in place.
type ringEnt struct {
	hdr     []byte // struct fuse_uring_req_header, then the iovecs
	payload []byte
}

// mountRing mounts raw on mountpoint (as root, with mount(2)) and serves
// it over io_uring. With required false, a kernel that refuses the rings
// leaves the mount served through /dev/fuse by the same server; with
// required true that is an error and nothing stays mounted.
func mountRing(raw gofuse.RawFileSystem, mountpoint string, mo *gofuse.MountOptions, required bool) (*ringServer, error) {
	opts := *mo
	opts.ExtraCapabilities |= gofuse.CAP_OVER_IO_URING
	nq, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	fd, err := mountDev(mountpoint, &opts)
	if err != nil {
		return nil, err
	}
	rs := &ringServer{fd: fd, mountpoint: mountpoint, ps: gofuse.NewProtocolServer(raw, &opts), done: make(chan struct{})}
	// A request read from the fd is a header, its arguments and at most
	// max_write bytes of data; a reply at most max_read (= max_write)
	// bytes of data and the op's out struct.
	rs.devBufSize = opts.MaxWrite + 8192
	rs.bufs.New = func() any { b := make([]byte, rs.devBufSize); return &b }
	offered, err := rs.init()
	if err == nil && !offered && required {
		err = fmt.Errorf("%w: the kernel did not offer it in INIT", errNoURing)
	}
	if err == nil && offered {
		err = rs.setupQueues(nq, opts.MaxWrite)
		if err != nil && !required && !rs.registered {
			rs.closeQueues()
			err = nil
		}
	}
	rs.rings = len(rs.queues) > 0
	go rs.readDev()
	if err == nil {
		err = pollHack(mountpoint)
	}
	if err != nil {
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		rs.wait()
		return nil, err
	}
	return rs, nil
}

// pollHack makes the kernel learn, before anything else opens a file of
// the mount, that the server does not implement POLL, as go-fuse's
// server does after mounting: the Go runtime adds every file it opens to
// its epoll set with a system call that keeps its scheduler slot, and a
// POLL request that waited for this process's own server could take the
// slots the server needs (GOMAXPROCS of them) and deadlock. go-fuse's
// request handler answers the lookup of this name itself, and POLL on it
// with ENOSYS, after which the kernel sends no more POLLs.
func pollHack(mountpoint string) error {
	fd, err := unix.Open(mountpoint+"/.go-fuse-epoll-hack", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("disabling POLL: %w", err)
	}
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}, 0)
	return unix.Close(fd)
}

// possibleCPUs counts the CPUs the kernel may ever run on: it makes a
// queue for each (num_possible_cpus).
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, fmt.Errorf("counting CPUs for FUSE over io_uring: %w", err)
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if isRange {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			return 0, fmt.Errorf("counting CPUs for FUSE over io_uring: bad /sys/devices/system/cpu/possible %q", b)
		}
		n += z - a + 1
	}
	return n, nil
}

// mountDev opens /dev/fuse and mounts it on mountpoint with the options
// go-fuse's direct mount passes (mount_linux.go), returning the fd.
func mountDev(mountpoint string, opts *gofuse.MountOptions) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return -1, pathErr("stat", mountpoint, err)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, pathErr("open", "/dev/fuse", err)
	}
	data := []string{
		"fd=" + strconv.Itoa(fd),
		fmt.Sprintf("rootmode=%o", st.Mode&unix.S_IFMT),
		"user_id=" + strconv.Itoa(os.Geteuid()),
		"group_id=" + strconv.Itoa(os.Getegid()),
		"max_read=" + strconv.Itoa(opts.MaxWrite),
	}
	data = append(data, opts.Options...)
	if opts.AllowOther {
		data = append(data, "allow_other")
	}
	source := opts.FsName
	if source == "" {
		source = opts.Name
	}
	if err := unix.Mount(source, mountpoint, "fuse."+opts.Name, unix.MS_NOSUID|unix.MS_NODEV, strings.Join(data, ",")); err != nil {
		unix.Close(fd)
		return -1, pathErr("mount", mountpoint, err)
	}
	return fd, nil
}

// init answers the kernel's INIT, the first request on a new mount, and
// reports whether the kernel offered FUSE over io_uring. The reply asks
// for it if offered (opts.ExtraCapabilities).
func (rs *ringServer) init() (bool, error) {
	bp := rs.bufs.Get().(*[]byte)
	defer rs.bufs.Put(bp)
	buf := *bp
	n, err := readRetry(rs.fd, buf)
	if err != nil {
		return false, fmt.Errorf("reading INIT from /dev/fuse: %w", err)
	}
	if n < inHeaderLen || binary.LittleEndian.Uint32(buf[4:]) != opInit {
		return false, fmt.Errorf("the kernel's first request is not INIT (%d bytes)", n)
	}
	var in gofuse.InitIn
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&in)), unsafe.Sizeof(in)), buf[:n]) // InitIn starts with the header
	offered := in.Flags64()&gofuse.CAP_OVER_IO_URING != 0
	out := make([]byte, 4096)
	m, st := rs.ps.HandleRequest([][]byte{buf[:n]}, [][]byte{out})
	if !st.Ok() || m < outHdrLen {
		return false, fmt.Errorf("INIT: %v", st)
	}
	if e := int32(binary.LittleEndian.Uint32(out[4:])); e != 0 {
		return false, fmt.Errorf("INIT refused: %v", syscall.Errno(-e))
	}
	if _, err := unix.Write(rs.fd, out[:m]); err != nil {
		return false, fmt.Errorf("answering INIT: %w", err)
	}
	return offered, nil
}

// readRetry reads one request from the fd, retrying where the kernel
// withdrew it (ENOENT: interrupted) or a signal came.
func readRetry(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR, unix.EAGAIN, unix.ENOENT:
			continue
		}
		return 0, err
	}
}

// setupQueues makes one io_uring per possible CPU and registers
// ringEntries entries on each. A REGISTER the kernel refuses completes at
// once with its errno; one it takes stays pending until a request fills
// the entry.
func (rs *ringServer) setupQueues(nq, maxWrite int) error {
	// The kernel wants room for its largest request or reply:
	// max(FUSE_MIN_READ_BUFFER, max_write, max_pages*PAGE_SIZE).
	payload := max(8192, (maxWrite+4095)&^4095)
	for qid := range nq {
		r, err := newIOURing(2 * ringEntries)
		if err != nil {
			return fmt.Errorf("%w: %v", errNoURing, err)
		}
		q := &ringQueue{rs: rs, qid: uint16(qid), ring: r}
		rs.queues = append(rs.queues, q)
		per := ringHdrPage + payload
		// Mapped, not allocated: the kernel writes into it, and pages
		// no request ever reached stay untouched.
		if q.mem, err = unix.Mmap(-1, 0, ringEntries*per, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
			return fmt.Errorf("%w: mapping ring buffers: %v", errNoURing, err)
		}
		q.ents = make([]ringEnt, ringEntries)
		for i := range q.ents {
			e := &q.ents[i]
			b := q.mem[i*per : (i+1)*per]
			e.hdr, e.payload = b[:ringHdrPage], b[ringHdrPage:]
			iov := (*[2]unix.Iovec)(unsafe.Pointer(&e.hdr[ringIovOff]))
			iov[0].Base, iov[1].Base = &e.hdr[0], &e.payload[0]
			iov[0].SetLen(ringHeaderLen)
			iov[1].SetLen(len(e.payload))
		}
	}
	// Each queue's thread registers its entries and then serves them.
	// The first entry goes alone: while it is refused, nothing is
	// registered and the caller may still serve through /dev/fuse. Once
	// one is, the kernel routes requests to the rings as soon as every
	// queue has an entry, and a later failure must end the mount.
	for i, q := range rs.queues {
		ready := make(chan error)
		rs.reapers.Add(1)
		go q.run(i == 0, ready)
		if err := <-ready; err != nil {
			return err
		}
	}
	return nil
}

// run registers the queue's entries, says on ready whether that worked,
// and then serves them until stop. It keeps one OS thread for itself: the
// kernel hands a filled entry to the task that submitted its command, as
// task work that runs when that task next enters the kernel. A goroutine
// that moved between threads would leave completions queued on threads
// that are asleep elsewhere, or blocked in a FUSE request on this very
// mount, waiting for them. So this thread submits every command of the
// queue and serves each request itself, in turn: the reply and the wait
// for the next request are one io_uring_enter.
func (q *ringQueue) run(first bool, ready chan<- error) {
	defer q.rs.reapers.Done()
	// Never unlocked: the thread ends with the goroutine, and the kernel
	// cancels what it still had pending.
	runtime.LockOSThread()
	idx := make([]int, len(q.ents))
	for j := range idx {
		idx[j] = j
	}
	if first {
		if err := q.registerAll(idx[:1]); err != nil {
			ready <- err
			return
		}
		q.rs.registered = true
		idx = idx[1:]
	}
	if err := q.registerAll(idx); err != nil {
		ready <- err
		return
	}
	ready <- nil
	cs := q.early
	q.early = nil
	for {
		for _, c := range cs {
			switch {
			case c.userData == stopTag:
				return
			case c.res < 0 || c.userData >= uint64(len(q.ents)):
				// The entry ended (ENOTCONN, ECANCELED: the connection is
				// going) or a commit was refused: the kernel has failed
				// that request itself.
			default:
				q.serve(&q.ents[c.userData], c.userData)
			}
		}
		if err := q.ring.enter(true); err != nil {
			// This CPU's requests would wait for this queue until
			// unmount: end the connection instead.
			q.rs.abort(fmt.Errorf("ring queue %d: %w", q.qid, err))
			return
		}
		cs = q.ring.reap(cs[:0])
	}
}

// register submits a REGISTER for each of the entries idx and returns
// those the kernel refused with EAGAIN (the connection is not marked
// initialized yet), to try again. A refusal completes at once; an entry
// taken stays pending until a request fills it.
func (q *ringQueue) register(idx []int) ([]int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, i := range idx {
		s := q.ring.sqe()
		if s == nil { // the SQ has room for every entry: a bug if not
			return nil, fmt.Errorf("%w: no room in the submission queue for entry %d", errNoURing, i)
		}
		q.fill(s, uringCmdRegister, uint64(i), 0)
		binary.LittleEndian.PutUint64(s[16:], uint64(uintptr(unsafe.Pointer(&q.ents[i].hdr[ringIovOff])))) // addr
		binary.LittleEndian.PutUint32(s[24:], 2)                                                           // len: two iovecs
	}
	q.ring.publish()
	if err := q.ring.enter(false); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoURing, err)
	}
	var again []int
	var err error
	for _, c := range q.ring.reap(nil) {
		switch {
		case c.res >= 0:
			q.early = append(q.early, c) // a request came already
		case c.res == -int32(unix.EAGAIN):
			again = append(again, int(c.userData))
		case err == nil:
			err = fmt.Errorf("%w: registering a ring entry: %w", errNoURing, syscall.Errno(-c.res))
		}
	}
	return again, err
}

// registerAll registers the entries idx, trying those refused with
// EAGAIN again for a while.
func (q *ringQueue) registerAll(idx []int) error {
	for attempt := 0; len(idx) > 0; attempt++ {
		if attempt == 100 {
			return fmt.Errorf("%w: registering a ring entry: %w", errNoURing, unix.EAGAIN)
		}
		if attempt > 0 {
			time.Sleep(time.Millisecond)
		}
		var err error
		if idx, err = q.register(idx); err != nil {
			return err
		}
	}
	return nil
}

// fill makes s a FUSE ring command on entry ent.
func (q *ringQueue) fill(s []byte, op uint32, ent, commitID uint64) {
	s[0] = ioringOpURingCmd
	binary.LittleEndian.PutUint32(s[4:], uint32(q.rs.fd))
	binary.LittleEndian.PutUint32(s[8:], op) // cmd_op
	binary.LittleEndian.PutUint64(s[32:], ent)
	// struct fuse_uring_cmd_req {u64 flags; u64 commit_id; u16 qid; ...}
	binary.LittleEndian.PutUint64(s[sqeCmdOff+8:], commitID)
	binary.LittleEndian.PutUint16(s[sqeCmdOff+16:], q.qid)
}

// serve answers the request in an entry and queues the command that
// re-arms the entry; run submits it.
func (q *ringQueue) serve(e *ringEnt, idx uint64) {
	q.rs.ringServed.Add(1)
	h := e.hdr
	length := int(binary.LittleEndian.Uint32(h[ringInOut:]))
	unique := binary.LittleEndian.Uint64(h[ringInOut+8:])
	psz := min(int(binary.LittleEndian.Uint32(h[ringPayloadSz:])), len(e.payload))
	// The op's first argument is in op_in, the rest in the payload; the
	// header's length counts them all.
	opSize := min(max(length-inHeaderLen-psz, 0), ringOpInSize)
	in := [][]byte{h[ringInOut : ringInOut+inHeaderLen], h[ringOpIn : ringOpIn+opSize], e.payload[:psz]}
	// The reply's header goes to in_out, all its arguments to the
	// payload. Arguments are parsed before the reply is written over
	// them (names are copied out), so the two may share the buffer.
	n, st := q.rs.ps.HandleRequest(in, [][]byte{h[ringInOut : ringInOut+outHdrLen], e.payload})
	if !st.Ok() || n < outHdrLen {
		n = outHdrLen
		binary.LittleEndian.PutUint32(h[ringInOut:], outHdrLen)
		binary.LittleEndian.PutUint32(h[ringInOut+4:], ^uint32(unix.EIO)+1) // -EIO
		binary.LittleEndian.PutUint64(h[ringInOut+8:], unique)
	}
	binary.LittleEndian.PutUint32(h[ringPayloadSz:], uint32(n-outHdrLen))
	q.mu.Lock()
	if s := q.ring.sqe(); s != nil { // never full: the SQ has room for every entry
		q.fill(s, uringCmdCommitAndFetch, idx, unique)
		q.ring.publish()
	}
	q.mu.Unlock()
}

// stop makes the queue's reaper return, by a NOP it completes.
func (q *ringQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.ring.sqe(); s != nil {
		s[0] = ioringOpNop
		binary.LittleEndian.PutUint64(s[32:], stopTag)
		q.ring.publish()
		// A NOP completes at once, in this task: no task work.
		_ = q.ring.enter(false)
	}
}

// readDev serves the requests that come by read(2) until the connection
// ends (ENODEV: unmounted or aborted), then stops the rings and closes.
func (rs *ringServer) readDev() {
	for {
		bp := rs.bufs.Get().(*[]byte)
		n, err := readRetry(rs.fd, *bp)
		if err != nil {
			rs.bufs.Put(bp)
			break
		}
		rs.devServed.Add(1)
		rs.handlers.Add(1)
		go rs.serveDev(bp, n)
	}
	for _, q := range rs.queues {
		if q.mem != nil {
			q.stop()
		}
	}
	rs.reapers.Wait()
	rs.handlers.Wait()
	rs.closeQueues()
	rs.fdMu.Lock()
	rs.fdClosed = true
	unix.Close(rs.fd)
	rs.fdMu.Unlock()
	close(rs.done)
}

// serveDev answers one request read from the fd.
func (rs *ringServer) serveDev(bp *[]byte, n int) {
	defer rs.handlers.Done()
	defer rs.bufs.Put(bp)
	op := rs.bufs.Get().(*[]byte)
	defer rs.bufs.Put(op)
	m, st := rs.ps.HandleRequest([][]byte{(*bp)[:n]}, [][]byte{*op})
	if !st.Ok() || m == 0 {
		return // FORGET and answered INTERRUPTs have no reply
	}
	// ENOENT: the request was interrupted and is gone.
	_, _ = unix.Write(rs.fd, (*op)[:m])
}

// closeQueues closes the rings, which cancels the commands pending on
// them, and unmaps the buffers.
func (rs *ringServer) closeQueues() {
	for _, q := range rs.queues {
		q.ring.close()
		if q.mem != nil {
			_ = unix.Munmap(q.mem)
		}
	}
	rs.queues = nil
}

// wait blocks until serving ended.
func (rs *ringServer) wait() { <-rs.done }

// InodeNotify tells the kernel to drop what it caches of an inode's
// range (off < 0: its attributes only; n 0: to the end). Notifications
// are not accepted through the rings: it writes to the fd.
func (rs *ringServer) InodeNotify(ino uint64, off, n int64) gofuse.Status {
	var b [outHdrLen + int(unsafe.Sizeof(gofuse.NotifyInvalInodeOut{}))]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], notifyInvalInode)
	binary.LittleEndian.PutUint64(b[16:], ino)
	binary.LittleEndian.PutUint64(b[24:], uint64(off))
	binary.LittleEndian.PutUint64(b[32:], uint64(n))
	rs.fdMu.RLock()
	defer rs.fdMu.RUnlock()
	if rs.fdClosed {
		return gofuse.Status(unix.ENOTCONN)
	}
	if _, err := unix.Write(rs.fd, b[:]); err != nil {
		return gofuse.ToStatus(err)
	}
	return gofuse.OK
}
