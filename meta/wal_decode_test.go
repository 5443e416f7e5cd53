package meta

import (
	"errors"
	"runtime"
	"syscall"
	"testing"
)

// TestWALDecodeUnsortedSums: the encoder writes data checksums by
// ascending block, each once; a payload with them out of order or
// repeated is refused (it would re-encode differently).
func TestWALDecodeUnsortedSums(t *testing.T) {
	sums := func(blocks ...uint64) []byte {
		p := be.AppendUint32(be.AppendUint32(nil, 0), 0)
		p = be.AppendUint32(p, uint32(len(blocks)))
		for _, b := range blocks {
			p = be.AppendUint32(be.AppendUint64(p, b), 7)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		blocks []uint64
		ok     bool
	}{
		{"ascending", []uint64{3, 5}, true},
		{"descending", []uint64{5, 3}, false},
		{"repeated", []uint64{3, 3}, false},
	} {
		_, err := decodeWALPayload(7, sums(tc.blocks...))
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, syscall.EUCLEAN) {
			t.Errorf("%s: %v; want ok %v (or EUCLEAN)", tc.name, err, tc.ok)
		}
	}
}

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
