package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// A running mount keeps a small state directory entry, keyed by its mount
// point, for holefs umount and holefs stat: <key>.json (pid, mount point,
// source, cache mode, metrics addresses), <key>.sock (a Unix socket serving
// /metrics and /stats.json, always, whether or not --metrics was given)
// and, for --daemon, <key>.log. The directory is $XDG_RUNTIME_DIR/holefs,
// or /run/holefs for root, or $TMPDIR/holefs-<uid>; it is private (0700).

// mountState is the content of <key>.json.
type mountState struct {
	PID        int    `json:"pid"`
	Mountpoint string `json:"mountpoint"`
	Source     string `json:"source"`
	CacheMode  string `json:"cache_mode"`
	Metrics    string `json:"metrics,omitempty"` // the --metrics TCP address
	Socket     string `json:"socket"`
}

// stateDir returns the state directory (see above).
func stateDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "holefs")
	}
	if os.Geteuid() == 0 {
		return "/run/holefs"
	}
	return filepath.Join(os.TempDir(), "holefs-"+strconv.Itoa(os.Geteuid()))
}

// statePath returns the state file of a mount point with the given suffix
// (".json", ".sock", ".log"). The key is a hash, not the path itself,
// because a Unix socket's path must stay under 108 bytes.
func statePath(mountpoint, suffix string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	return filepath.Join(stateDir(), hex.EncodeToString(sum[:8])+suffix)
}

// writeState records a running mount.
func writeState(st mountState) error {
	if err := os.MkdirAll(stateDir(), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(st.Mountpoint, ".json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(st.Mountpoint, ".json"))
}

// readState returns the state of the mount on mountpoint.
func readState(mountpoint string) (mountState, error) {
	var st mountState
	b, err := os.ReadFile(statePath(mountpoint, ".json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// removeState removes a mount's state files (not its log).
func removeState(mountpoint string) {
	_ = os.Remove(statePath(mountpoint, ".json"))
	_ = os.Remove(statePath(mountpoint, ".sock"))
}

// absDir returns the cleaned absolute form of a mount point argument.
func absDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("mount point %s: %v", dir, err)
	}
	return abs, nil
}
