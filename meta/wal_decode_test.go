package meta

import (
	"errors"
	"runtime"
	"syscall"
	"testing"
)

// TestWALDecodeDamagedLength: a string length past the end of a payload
// is an EUCLEAN error, and the decoder allocates nothing near that length
// (a record holefs did not write may claim up to 4 GiB).
func TestWALDecodeDamagedLength(t *testing.T) {
	const claimed = 64 << 20
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"dirent name", be.AppendUint32(be.AppendUint64(append(be.AppendUint32(nil, 1), byte(recDirent)), RootIno), claimed)},
		{"xattr value", be.AppendUint32(append(be.AppendUint32(be.AppendUint64(append(be.AppendUint32(nil, 1), byte(recXattr)), 5), 0), 1), claimed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decodeWALPayload(7, tc.p)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, syscall.EUCLEAN) {
				t.Fatalf("decode: %v; want EUCLEAN", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > claimed/4 {
				t.Errorf("decoding allocated %d bytes for a claimed length of %d", n, claimed)
			}
		})
	}
}
