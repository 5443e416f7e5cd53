package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCheckAllowOther: only a line user_allow_other in the FUSE
// configuration lets a user other than root mount with --allow-other;
// otherwise the error names the file and the line to add.
func TestCheckAllowOther(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		conf string // "" : no file
		ok   bool
	}{
		{"no file", "", false},
		{"empty", "\n", false},
		{"commented out", "#user_allow_other\n", false},
		{"other settings only", "mount_max = 1000\n", false},
		{"a prefix of the word", "user_allow_others\n", false},
		{"the line", "user_allow_other\n", true},
		{"among others, indented, no newline", "mount_max = 1000\n  user_allow_other ", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conf := filepath.Join(dir, "fuse.conf"+string(rune('a'+i)))
			if tc.conf != "" {
				if err := os.WriteFile(conf, []byte(tc.conf), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := checkAllowOther(conf)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.Contains(msg, "user_allow_other in "+conf) || strings.Contains(msg, "\n") {
				t.Errorf("error %q does not name the line and the file on one line", msg)
			}
		})
	}
}

// TestMountAllowOther: with --allow-other, a user other than the mounter
// lists the mount's root; without it the kernel turns the user away.
func TestMountAllowOther(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a command as another user")
	}
	needFUSE(t)
	isolate(t)
	for _, tc := range []struct {
		name  string
		flags []string
		ok    bool
	}{
		{"allow-other", []string{"--allow-other"}, true},
		{"default", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := t.TempDir()
			// Let the user reach the mount point through the test's 0700
			// temporary directory.
			if err := os.Chmod(filepath.Dir(mnt), 0o755); err != nil {
				t.Fatal(err)
			}
			unmountAfter(t, mnt)
			var out, errb bytes.Buffer
			if c := run(append(append([]string{"mount", "--memory", "--daemon"}, tc.flags...), mnt), &out, &errb); c != 0 {
				t.Fatalf("mount: exit %d: %s", c, errb.String())
			}
			cmd := exec.Command("ls", "-a", mnt)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			lsOut, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok {
				t.Errorf("ls as nobody: %v: %s", err, lsOut)
			}
			if c := run([]string{"umount", mnt}, &out, &errb); c != 0 {
				t.Fatalf("umount: exit %d: %s", c, errb.String())
			}
		})
	}
}
