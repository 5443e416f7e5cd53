package fuse

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// transportEnv names the transport the tests mount with: "dev" (the
// default) or "uring". CI runs the package once with each.
const transportEnv = "HOLEFS_FUSE_TRANSPORT"

// testTransport returns the transport a test mounts with. For uring it
// turns the fuse module's enable_uring on (restored when the test binary
// exits), skipping the test where that is not possible.
func testTransport(t testing.TB) Transport {
	t.Helper()
	name := os.Getenv(transportEnv)
	if name == "" {
		return TransportDev
	}
	tr, err := ParseTransport(name)
	if err != nil {
		t.Fatalf("%s: %v", transportEnv, err)
	}
	if tr != TransportDev {
		enableURing(t)
	}
	return tr
}

var (
	uringParamMu  sync.Mutex
	uringParamWas []byte // enable_uring before the tests set it; nil: untouched
)

// enableURing sets enable_uring to Y for the rest of the test binary's
// run, or skips the test saying why it cannot. It writes Y before every
// mount: another test binary running at the same time may have restored
// the switch it found.
func enableURing(t testing.TB) {
	t.Helper()
	uringParamMu.Lock()
	defer uringParamMu.Unlock()
	old, err := os.ReadFile(URingParam)
	if err != nil {
		t.Skipf("no FUSE over io_uring on this kernel (%v): Linux 6.14+ with CONFIG_FUSE_IO_URING", err)
	}
	if err := os.WriteFile(URingParam, []byte("Y"), 0); err != nil {
		t.Skipf("cannot enable FUSE over io_uring (%v): run as root", err)
	}
	if uringParamWas == nil {
		uringParamWas = old
	}
}

// restoreURingParam puts enable_uring back as the tests found it.
func restoreURingParam() {
	uringParamMu.Lock()
	defer uringParamMu.Unlock()
	if uringParamWas != nil && strings.TrimSpace(string(uringParamWas)) != "Y" {
		_ = os.WriteFile(URingParam, uringParamWas, 0)
	}
	uringParamWas = nil
}
