package meta

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockIdle takes the lock an open image holds on its meta.db (bbolt's
// flock: exclusive for a writer, shared for a reader), without waiting,
// and returns the function that drops it. While it is held, no one can
// open the image (they wait, then get EBUSY). If anyone holds the image,
// it fails with EBUSY naming the holder and the fix. An image without a
// meta.db has no lock to take.
func lockIdle(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, MetaFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := lockHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("the image is in use by %s: unmount it (holefs umount) or close it first: %w", holder, syscall.EBUSY)
		}
		return nil, fmt.Errorf("locking %s: %w", MetaFile, err)
	}
	return func() { f.Close() }, nil // closing drops the flock
}

// lockHolder names the process holding a flock on f, from /proc/locks;
// "another process" when it cannot tell.
func lockHolder(f *os.File) string {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return "another process"
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return "another process"
	}
	defer locks.Close()
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; waiters
		// have a "->" after the number.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || fields[5] != id {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			break
		}
		if pid == os.Getpid() {
			return "this process"
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
			return fmt.Sprintf("process %d (%s)", pid, strings.TrimSpace(string(comm)))
		}
		return fmt.Sprintf("process %d", pid)
	}
	return "another process"
}
