package meta

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// flockMeta takes the flock an open image holds on its meta.db at path,
// the way bbolt takes it (how is LOCK_EX for a writer, LOCK_SH for a
// reader), retrying until wait has passed (once, when wait is 0), and
// returns the function that drops it. Everyone who must not touch
// meta.db while another process has the image takes it here: Open and
// Precheck while they check its raw pages, Create replacing an image. A
// busy image is errBusy's EBUSY, naming the holder.
func flockMeta(path string, how int, wait time.Duration) (unlock func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		switch {
		case err == nil:
			return func() { f.Close() }, nil // closing drops the flock
		case err == unix.EINTR:
			continue
		case err != unix.EWOULDBLOCK:
			f.Close()
			return nil, fmt.Errorf("%s: lock: %w", MetaFile, err)
		case !time.Now().Before(deadline):
			f.Close()
			return nil, errBusy(path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errBusy is the error for an image whose meta.db at path another open
// has locked: EBUSY, in one line naming the holder and the fix.
func errBusy(path string) error {
	return fmt.Errorf("the image is in use by %s: unmount it (holefs umount) or close it first: %w", lockHolder(path), syscall.EBUSY)
}

// lockHolder names the process holding a flock on the file at path, from
// /proc/locks; "another process" when it cannot tell.
func lockHolder(path string) string {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
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
