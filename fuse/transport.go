package fuse

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Transport selects how the kernel's requests reach the server.
type Transport uint8

// The transports.
const (
	// TransportAuto serves over io_uring where the kernel offers it and
	// through /dev/fuse otherwise.
	TransportAuto Transport = iota
	// TransportURing serves over FUSE-over-io_uring (Linux 6.14 and
	// later, with the fuse module's enable_uring parameter set): one ring
	// per possible CPU, a request and its reply one submission, no read
	// and write system call pair per request. Mounting fails with a
	// one-line error where it is unavailable.
	TransportURing
	// TransportDev serves with go-fuse's loop: a read(2) of /dev/fuse per
	// request and a write(2) per reply.
	TransportDev
)

var transportNames = [...]string{TransportAuto: "auto", TransportURing: "uring", TransportDev: "dev"}

// String returns the transport's name, as ParseTransport takes it.
func (t Transport) String() string {
	if int(t) < len(transportNames) {
		return transportNames[t]
	}
	return fmt.Sprintf("Transport(%d)", uint8(t))
}

// ParseTransport parses "auto", "uring" or "dev".
func ParseTransport(s string) (Transport, error) {
	for i, n := range transportNames {
		if n == s {
			return Transport(i), nil
		}
	}
	return 0, fmt.Errorf("unknown transport %q (want auto, uring or dev)", s)
}

// URingParam is the fuse module's switch for FUSE over io_uring (default
// N; root may write Y). The kernel offers FUSE_OVER_IO_URING in INIT, and
// accepts ring commands, only while it is Y.
const URingParam = "/sys/module/fuse/parameters/enable_uring"

// uringParam is URingParam, a variable so that tests can point it at a
// file of their own instead of flipping the machine's switch.
var uringParam = URingParam

// errNoURing is why FUSE over io_uring is unavailable.
var errNoURing = errors.New("FUSE over io_uring is unavailable")

// uringAvailable reports whether the kernel offers FUSE over io_uring,
// and if not, why.
func uringAvailable() error {
	b, err := os.ReadFile(uringParam)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: this kernel has no %s (it needs Linux 6.14+ built with CONFIG_FUSE_IO_URING)", errNoURing, uringParam)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errNoURing, err)
	}
	if v := strings.TrimSpace(string(b)); v != "Y" && v != "1" {
		return fmt.Errorf("%w: it is disabled (as root: echo Y > %s)", errNoURing, uringParam)
	}
	return nil
}

// resolve picks the transport a mount uses: auto becomes uring or dev;
// uring fails where it is unavailable.
func (t Transport) resolve() (Transport, error) {
	switch t {
	case TransportDev:
		return t, nil
	case TransportURing:
		if err := uringAvailable(); err != nil {
			return 0, err
		}
		return t, nil
	case TransportAuto:
		if uringAvailable() != nil {
			return TransportDev, nil
		}
		return TransportURing, nil
	}
	return 0, fmt.Errorf("unknown transport %v", t)
}
