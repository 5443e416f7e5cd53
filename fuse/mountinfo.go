package fuse

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountInfo is one mount of /proc/self/mountinfo.
type MountInfo struct {
	Point  string // the mount point, absolute
	FSType string // e.g. "fuse.holefs"
	Source string // what the mount was made from (FsName for a holefs mount)
	Dev    uint64 // the mount's device number (for FUSE, its minor numbers the connection)
}

// FindMount returns the visible (last) mount on the absolute, clean path
// dir, and whether there is one. It reads /proc/self/mountinfo rather than
// stat'ing dir, which for a FUSE mount would be a request to its server.
func FindMount(dir string) (MountInfo, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountInfo{}, false, err
	}
	defer f.Close()
	var found MountInfo
	ok := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || unescapeMountinfo(fields[4]) != dir {
			continue
		}
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		var major, minor uint32
		if sep < 0 || sep+2 >= len(fields) {
			continue
		}
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &major, &minor); err != nil {
			continue
		}
		found, ok = MountInfo{Point: dir, FSType: fields[sep+1], Source: unescapeMountinfo(fields[sep+2]), Dev: unix.Mkdev(major, minor)}, true
	}
	if err := sc.Err(); err != nil {
		return MountInfo{}, false, err
	}
	return found, ok, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
