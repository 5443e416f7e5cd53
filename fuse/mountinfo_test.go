package fuse

import "testing"

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/plain":      "/mnt/plain",
		`/mnt/a\040b`:     "/mnt/a b",
		`/mnt/tab\011x`:   "/mnt/tab\tx",
		`/mnt/back\134sl`: `/mnt/back\sl`,
		`/mnt/short\04`:   `/mnt/short\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFindMount: /proc is a mount of type proc; a directory that is no
// mount point is not found.
func TestFindMount(t *testing.T) {
	m, ok, err := FindMount("/proc")
	if err != nil {
		t.Skipf("no /proc/self/mountinfo: %v", err)
	}
	if !ok || m.FSType != "proc" || m.Point != "/proc" || m.Dev == 0 {
		t.Errorf("FindMount(/proc) = %+v, %v; want the proc mount", m, ok)
	}
	if m, ok, err := FindMount(t.TempDir()); ok || err != nil {
		t.Errorf("FindMount(a fresh directory) = %+v, %v, %v; want none", m, ok, err)
	}
}
