package fuse

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// The multi-process stress: child processes (re-executions of the test
// binary, one as the unprivileged uid 65534) each run a seeded random
// sequence of system calls in a subtree of their own, once on a tmpfs and
// once through the mount. Every call's errno and what reads and stats
// return are logged; the two logs must be equal line for line, and the
// trees equal at the end of each phase. Between the two phases the
// filesystem is unmounted (an image is closed, checked by fsck, which must
// find nothing wrong and no orphans, and opened again) and mounted again.
//
// HOLEFS_STRESS_OPS sets the operations per child (default 300),
// HOLEFS_STRESS_SEED the seed (default 1).

const stressHelper = "stress"

func init() { helpers[stressHelper] = stressChild }

// Operation kinds of the stress mix.
const (
	stCreate   = iota // open O_CREAT (maybe O_EXCL, O_TRUNC), pwrite, close
	stWrite           // open O_WRONLY, pwrite, close: the kernel fills pages through a write-only handle
	stWritev          // open O_RDWR, pwritev, close
	stAppend          // open O_WRONLY|O_APPEND, write, close (echo >>)
	stOpen            // open a handle slot, kept across other operations
	stHWrite          // write through a slot (pwrite, or write if O_APPEND)
	stHWritev         // writev at a slot's position
	stHTrunc          // ftruncate a slot
	stHFsync          // fsync a slot
	stHClose          // close a slot
	stTruncate        // truncate(2) a path
	stMknod           // mknod S_IFREG, S_IFIFO, S_IFSOCK or S_IFCHR 0:0
	stMkfifo          // mkfifo
	stLink            // link
	stRename          // renameat2 with no flag, RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT
	stUnlink          // unlink
	stMkdir           // mkdir
	stRmdir           // rmdir
	stFsync           // open O_RDONLY, fsync, close (files and directories)
	stRead            // open O_RDONLY, read all, close: logs length and CRC
	stStat            // lstat: logs type, permissions, links and size
	stSymlink         // symlink
	stHRead           // pread through a slot: logs length and CRC
	stKinds
)

var stNames = [stKinds]string{"create", "write", "writev", "append", "open", "hwrite", "hwritev", "htrunc",
	"hfsync", "hclose", "truncate", "mknod", "mkfifo", "link", "rename", "unlink", "mkdir", "rmdir", "fsync",
	"read", "stat", "symlink", "hread"}

// stressOp is one generated operation. The sequence depends on the seed
// only, never on results, so both runs issue the same calls and a phase
// can start in the middle of it.
type stressOp struct {
	kind   int
	p1, p2 string
	slot   int
	flags  int
	off    int64
	n      int // bytes to write; for writev the first iovec's
	data   int64
}

// stressDirs are the directories a child works in, relative to its
// subtree; all but "." come and go.
var stressDirs = []string{".", "a", "b", "a/c"}

// stressPath picks a path for an operation: one of stressDirs, or one of
// five names in one of them.
func stressPath(r *rand.Rand) string {
	d := stressDirs[r.Intn(len(stressDirs))]
	if r.Intn(5) == 0 {
		return d
	}
	name := "f" + strconv.Itoa(r.Intn(5))
	if d == "." {
		return name
	}
	return d + "/" + name
}

func genStressOps(seed int64, n int) []stressOp {
	r := rand.New(rand.NewSource(seed))
	ops := make([]stressOp, n)
	openFlags := []int{unix.O_WRONLY, unix.O_RDWR, unix.O_WRONLY | unix.O_APPEND, unix.O_RDWR | unix.O_CREAT, unix.O_RDONLY}
	for i := range ops {
		o := stressOp{kind: r.Intn(stKinds), p1: stressPath(r), p2: stressPath(r), slot: r.Intn(3),
			off: r.Int63n(48 << 10), n: 1 + r.Intn(6000), data: r.Int63()}
		if r.Intn(8) == 0 {
			o.off = r.Int63n(2 << 20) // past the pages written so far: holes, more extents
		}
		switch o.kind {
		case stCreate:
			o.flags = unix.O_CREAT | unix.O_WRONLY
			if r.Intn(3) == 0 {
				o.flags |= unix.O_TRUNC
			}
			if r.Intn(4) == 0 {
				o.flags |= unix.O_EXCL
			}
		case stOpen:
			o.flags = openFlags[r.Intn(len(openFlags))]
		case stMknod:
			o.flags = []int{unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR}[r.Intn(4)]
		case stRename:
			o.flags = []int{0, 0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE, unix.RENAME_WHITEOUT}[r.Intn(5)]
		case stTruncate, stHTrunc:
			o.off = r.Int63n(64 << 10)
		}
		ops[i] = o
	}
	return ops
}

// stressData is the deterministic content of a write.
func stressData(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// stressArg is a child's argument: its subtree, seed and range of ops.
type stressArg struct {
	dir      string
	seed     int64
	from, to int
}

func (a stressArg) String() string {
	return fmt.Sprintf("%s|%d|%d|%d", a.dir, a.seed, a.from, a.to)
}

func parseStressArg(s string) (stressArg, error) {
	var a stressArg
	f := strings.Split(s, "|")
	if len(f) != 4 {
		return a, fmt.Errorf("bad stress argument %q", s)
	}
	var err [3]error
	a.dir = f[0]
	a.seed, err[0] = strconv.ParseInt(f[1], 10, 64)
	a.from, err[1] = strconv.Atoi(f[2])
	a.to, err[2] = strconv.Atoi(f[3])
	for _, e := range err {
		if e != nil {
			return a, fmt.Errorf("bad stress argument %q: %v", s, e)
		}
	}
	return a, nil
}

// stressChild runs ops [from, to) of the seed's sequence in dir and
// writes one line per operation to stdout.
func stressChild(arg string) error {
	a, err := parseStressArg(arg)
	if err != nil {
		return err
	}
	var slots [3]stressSlot
	for i := range slots {
		slots[i].fd = -1
	}
	out := &bytes.Buffer{}
	p := func(s string) string { return a.dir + "/" + s }
	for i, o := range genStressOps(a.seed, a.to)[a.from:] {
		res, err := stressRun(o, p, slots[:])
		fmt.Fprintf(out, "%d %s %s %s: %s%s\n", a.from+i, stNames[o.kind], o.p1, o.p2, errnoName(errnoOf(err)), res)
		if err != nil && errnoOf(err) == 0 {
			return fmt.Errorf("op %d: %v", a.from+i, err)
		}
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

// stressSlot is a file descriptor a child keeps open across operations.
type stressSlot struct {
	fd     int // -1 when closed
	append bool
}

// stressRun runs one operation; res is what it read, for the log.
func stressRun(o stressOp, p func(string) string, slots []stressSlot) (res string, err error) {
	// O_NONBLOCK everywhere: an open of a FIFO must not wait for a peer.
	const nb = unix.O_NONBLOCK | unix.O_CLOEXEC
	withFd := func(path string, flags int, fn func(fd int) error) error {
		fd, err := unix.Open(path, flags|nb, 0o644)
		if err != nil {
			return err
		}
		err = fn(fd)
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		return err
	}
	pwrite := func(fd int) error {
		_, err := unix.Pwrite(fd, stressData(o.data, o.n), o.off)
		return err
	}
	iovecs := func() [][]byte {
		return [][]byte{stressData(o.data, o.n), stressData(o.data+1, 1+o.n/3), stressData(o.data+2, 4096)}
	}
	s := &slots[o.slot]
	switch o.kind {
	case stCreate:
		return "", withFd(p(o.p1), o.flags, pwrite)
	case stWrite:
		return "", withFd(p(o.p1), unix.O_WRONLY, pwrite)
	case stWritev:
		return "", withFd(p(o.p1), unix.O_RDWR, func(fd int) error {
			_, err := unix.Pwritev(fd, iovecs(), o.off)
			return err
		})
	case stAppend:
		return "", withFd(p(o.p1), unix.O_WRONLY|unix.O_APPEND, func(fd int) error {
			_, err := unix.Write(fd, stressData(o.data, o.n))
			return err
		})
	case stOpen:
		if s.fd >= 0 {
			unix.Close(s.fd)
			s.fd = -1
		}
		fd, err := unix.Open(p(o.p1), o.flags|nb, 0o644)
		if err == nil {
			s.fd, s.append = fd, o.flags&unix.O_APPEND != 0
		}
		return "", err
	case stHWrite, stHWritev, stHTrunc, stHFsync, stHClose, stHRead:
		if s.fd < 0 {
			return " (no handle)", nil
		}
		switch o.kind {
		case stHWrite:
			if s.append {
				_, err = unix.Write(s.fd, stressData(o.data, o.n))
			} else {
				err = pwrite(s.fd)
			}
		case stHWritev:
			_, err = unix.Writev(s.fd, iovecs())
		case stHTrunc:
			err = unix.Ftruncate(s.fd, o.off)
		case stHFsync:
			err = unix.Fsync(s.fd)
		case stHClose:
			err = unix.Close(s.fd)
			s.fd = -1
		case stHRead:
			b := make([]byte, o.n)
			var n int
			n, err = unix.Pread(s.fd, b, o.off)
			return fmt.Sprintf(" %d bytes crc %08x", n, crc32.ChecksumIEEE(b[:max(n, 0)])), err
		}
		return "", err
	case stTruncate:
		return "", unix.Truncate(p(o.p1), o.off)
	case stMknod:
		return "", unix.Mknod(p(o.p1), uint32(o.flags)|0o644, 0)
	case stMkfifo:
		return "", unix.Mkfifo(p(o.p1), 0o640)
	case stLink:
		return "", unix.Link(p(o.p1), p(o.p2))
	case stRename:
		return "", unix.Renameat2(unix.AT_FDCWD, p(o.p1), unix.AT_FDCWD, p(o.p2), uint(o.flags))
	case stUnlink:
		return "", unix.Unlink(p(o.p1))
	case stMkdir:
		return "", unix.Mkdir(p(o.p1), 0o755)
	case stRmdir:
		return "", unix.Rmdir(p(o.p1))
	case stFsync:
		return "", withFd(p(o.p1), unix.O_RDONLY, unix.Fsync)
	case stRead:
		err := withFd(p(o.p1), unix.O_RDONLY, func(fd int) error {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
				return err // a FIFO, socket or directory: nothing to compare
			}
			b := make([]byte, st.Size+1)
			n, err := unix.Pread(fd, b, 0)
			res = fmt.Sprintf(" %d bytes crc %08x", n, crc32.ChecksumIEEE(b[:max(n, 0)]))
			return err
		})
		return res, err
	case stStat:
		var st unix.Stat_t
		if err := unix.Lstat(p(o.p1), &st); err != nil {
			return "", err
		}
		return " " + statLine(st), nil
	case stSymlink:
		return "", unix.Symlink(o.p2, p(o.p1))
	}
	panic("unknown stress op")
}

// statLine is what the stress compares of a stat: type, permissions,
// links, and the size of a regular file or symlink (a directory's size
// is the filesystem's choice).
func statLine(st unix.Stat_t) string {
	s := fmt.Sprintf("mode %o links %d", st.Mode, st.Nlink)
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFREG || t == unix.S_IFLNK {
		s += fmt.Sprintf(" size %d", st.Size)
	}
	return s
}

// treeLines describes the tree at dir, one line per entry in name order:
// stat, a regular file's CRC, a symlink's target.
func treeLines(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		line := rel + " " + statLine(st)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" crc %08x", crc32.ChecksumIEEE(b))
		case unix.S_IFLNK:
			t, err := os.Readlink(path)
			if err != nil {
				return err
			}
			line += " -> " + t
		}
		out = append(out, line)
		return nil
	})
	return out, err
}

// stressEnv reads an integer from the environment.
func stressEnv(t *testing.T, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// stressTarget is a filesystem the children run on.
type stressTarget struct {
	name, root string
}

// runStress runs the multi-process stress on an image and on an
// in-memory filesystem (memfs), each mounted with the default
// (writeback) cache, against a tmpfs.
func TestStress(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the stress needs root: a reference tmpfs, a FUSE mount, a child as uid 65534")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE on this machine (%v)", err)
	}
	ops := int(stressEnv(t, "HOLEFS_STRESS_OPS", 300))
	seed := stressEnv(t, "HOLEFS_STRESS_SEED", 1)
	bin, err := otherUserBinary(t)
	if err != nil {
		t.Logf("every child runs as root: %v", err)
		bin = ""
	}
	for _, backend := range []string{"image", holefs.BackendMemory} {
		t.Run(backend, func(t *testing.T) {
			runStress(t, backend, bin, ops, seed)
		})
	}
}

// stressMount is holefs mounted for the stress, remountable.
type stressMount struct {
	t     *testing.T
	image string         // the image's directory; "" in memory
	opts  holefs.Options // how to open the FS
	dir   string         // the mount point
	fsys  *holefs.FS     // nil while an image is closed
	srv   *Server        // nil while unmounted
}

// mount mounts the FS, opening an image first if it is closed.
func (m *stressMount) mount() {
	t := m.t
	if m.fsys == nil {
		var err error
		if m.fsys, err = holefs.Open(m.image, m.opts); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := Mount(m.dir, m.fsys, Options{AllowOther: true})
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	m.srv = srv
}

// unmount unmounts; an image is also closed and checked.
func (m *stressMount) unmount() {
	t := m.t
	if m.srv == nil {
		return
	}
	err := m.srv.Unmount()
	m.srv = nil
	if err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if m.image == "" {
		return
	}
	err = m.fsys.Close()
	m.fsys = nil
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	img, err := meta.Open(m.image, meta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("open image for fsck: %v", err)
	}
	defer img.Close()
	rep, err := meta.Check(img, meta.CheckOptions{})
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	for _, f := range rep.Findings {
		if f.Kind != meta.KindOrphan {
			t.Errorf("fsck after a clean unmount: %v", f)
		}
	}
	if rep.Orphans != 0 {
		t.Errorf("fsck after a clean unmount: %d orphans (files unlinked and closed before the unmount), want 0", rep.Orphans)
	}
}

// runStress runs the stress (see the top of this file) on an image, or an
// in-memory FS of backend; bin is the children's binary ("": this one, as
// root only).
func runStress(t *testing.T, backend, bin string, ops int, seed int64) {
	defer func() {
		if t.Failed() {
			t.Logf("seed %d, %d ops per child (HOLEFS_STRESS_SEED, HOLEFS_STRESS_OPS)", seed, ops)
		}
	}()
	tmp := mountTmpfs(t, unix.MS_NOSUID|unix.MS_NODEV, "size=256m") // as go-fuse mounts holefs
	m := &stressMount{t: t, dir: t.TempDir(), opts: holefs.Options{Backend: backend, SizeBytes: 256 << 20}}
	if backend == "image" {
		m.opts = holefs.Options{}
		m.image = filepath.Join(t.TempDir(), "img")
		if err := holefs.Mkfs(m.image, holefs.MkfsOptions{SizeBytes: 256 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	m.mount()
	t.Cleanup(func() {
		if m.srv != nil {
			if err := m.srv.Unmount(); err != nil {
				t.Errorf("Unmount: %v; detaching", err)
				_ = m.srv.Detach()
				<-m.srv.Done()
			}
		}
		if m.fsys != nil {
			if err := m.fsys.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	if bin != "" {
		reachable(t, m.dir)
		reachable(t, tmp)
	}
	targets := []stressTarget{{"tmpfs", tmp}, {"holefs", m.dir}}
	const children = 3
	for _, tg := range targets {
		for c := range children {
			d := filepath.Join(tg.root, "c"+strconv.Itoa(c))
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if c == children-1 && bin != "" {
				if err := os.Chown(d, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	phases := [][2]int{{0, ops / 2}, {ops / 2, ops}}
	for i, ph := range phases {
		if i > 0 {
			// Remount in the middle, then everything must still be there.
			m.unmount()
			m.mount()
			compareTrees(t, tmp, m.dir, children, "after the remount")
		}
		logs := map[string][]string{}
		spawnFailed := false
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, tg := range targets {
			for c := range children {
				wg.Add(1)
				go func() {
					defer wg.Done()
					arg := stressArg{dir: filepath.Join(tg.root, "c"+strconv.Itoa(c)), seed: seed*1000 + int64(c), from: ph[0], to: ph[1]}
					out, err := stressSpawn(bin, arg, c == children-1 && bin != "")
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Errorf("%s child %d: %v", tg.name, c, err)
						spawnFailed = true
					}
					logs[tg.name+strconv.Itoa(c)] = strings.Split(out, "\n")
				}()
			}
		}
		wg.Wait()
		if spawnFailed {
			return
		}
		for c := range children {
			compareLogs(t, c, logs["tmpfs"+strconv.Itoa(c)], logs["holefs"+strconv.Itoa(c)])
		}
		compareTrees(t, tmp, m.dir, children, fmt.Sprintf("after ops %d-%d", ph[0], ph[1]))
	}
	m.unmount()
}

// stressSpawn runs one child, as uid 65534 if nobody, and returns its log.
func stressSpawn(bin string, arg stressArg, nobody bool) (string, error) {
	if bin == "" {
		bin = os.Args[0]
	}
	cmd := exec.Command(bin, "-test.run=^$", arg.String())
	cmd.Env = childEnviron(stressHelper)
	cmd.Dir = "/"
	if nobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// compareLogs reports the operations whose results differ from tmpfs's:
// the first few in full (the later ones often follow from the first), then
// how many there were.
func compareLogs(t *testing.T, child int, want, got []string) {
	t.Helper()
	diffs := 0
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w == g {
			continue
		}
		if diffs++; diffs <= 5 {
			t.Errorf("child %d:\n  tmpfs:  %s\n  holefs: %s", child, w, g)
		}
	}
	if diffs > 5 {
		t.Errorf("child %d: %d operations in all differ from tmpfs", child, diffs)
	}
}

// compareTrees compares the children's subtrees on tmpfs and holefs.
func compareTrees(t *testing.T, tmp, mnt string, children int, when string) {
	t.Helper()
	for c := range children {
		sub := "c" + strconv.Itoa(c)
		want, err := treeLines(filepath.Join(tmp, sub))
		if err != nil {
			t.Fatalf("tmpfs tree: %v", err)
		}
		got, err := treeLines(filepath.Join(mnt, sub))
		if err != nil {
			t.Errorf("%s: holefs tree of %s: %v", when, sub, err)
			continue
		}
		if !slices.Equal(want, got) {
			t.Errorf("%s: trees of %s differ:\n  only on tmpfs:  %s\n  only on holefs: %s", when, sub,
				strings.Join(minus(want, got), "\n                  "), strings.Join(minus(got, want), "\n                  "))
		}
	}
}

// minus returns the lines of a that are not in b.
func minus(a, b []string) []string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, l)
		}
	}
	return out
}
