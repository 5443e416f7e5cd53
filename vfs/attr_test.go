package vfs

import (
	"fmt"
	"testing"
)

// TestKillSetID: writing, truncating and changing the owner take the
// set-user-ID bit, and the set-group-ID bit of a group-executable file or,
// when the caller is not in the file's group, of any file (Linux's
// setattr_should_drop_sgid); a caller with CAP_FSETID keeps them on write.
func TestKillSetID(t *testing.T) {
	tests := []struct {
		perm                uint32
		suidgid, notInGroup bool
		want                uint32 // after KillPriv
		wantChown           uint32 // after a change of owner (suidgid does not apply)
	}{
		{0o6755, true, false, 0o0755, 0o0755},
		{0o6755, false, false, 0o6755, 0o0755},
		{0o6745, true, false, 0o2745, 0o2745},
		{0o6745, true, true, 0o0745, 0o0745},
		{0o6745, false, true, 0o6745, 0o0745},
		{0o2666, true, true, 0o0666, 0o0666},
		{0o2666, true, false, 0o2666, 0o2666},
		{0o0644, true, true, 0o0644, 0o0644},
	}
	f := newMemFS(t, 64, nil)
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%o suidgid=%v notInGroup=%v", tc.perm, tc.suidgid, tc.notInGroup), func(t *testing.T) {
			for _, chown := range []bool{false, true} {
				in, _, err := f.Create(fmt.Sprintf("f%d-%v", i, chown), tc.perm, true)
				if err != nil {
					t.Fatal(err)
				}
				if err := in.Setattr(SetAttr{Valid: SetMode, Mode: tc.perm}); err != nil {
					t.Fatal(err)
				}
				want := tc.want
				if chown {
					want = tc.wantChown
					st := in.Stat()
					err = in.Setattr(SetAttr{Valid: SetUid | SetGid, Uid: st.Uid, Gid: st.Gid, NotInGroup: tc.notInGroup})
				} else {
					err = in.KillPriv(tc.suidgid, tc.notInGroup, false)
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := in.Stat().Mode & 0o7777; got != want {
					t.Errorf("chown %v: mode %o, want %o", chown, got, want)
				}
			}
		})
	}
}
