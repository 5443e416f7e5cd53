package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockmap/zonefs"
	"github.com/holefs/holefs/fuse"
)

// daemonEnv, in the environment of a --daemon child, names the descriptor
// on which it reports to its parent: "ok" once mounted, or the error.
const daemonEnv = "HOLEFS_DAEMON_READY_FD"

// mountCmd is holefs mount: it opens a filesystem, mounts it and serves it
// until it is unmounted or the process gets SIGINT or SIGTERM, then
// flushes and closes it.
func mountCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	memory := fl.Bool("memory", false, "mount a new in-memory filesystem (gone when unmounted)")
	image := fl.String("image", "", "mount the image at `PATH` (made by holefs mkfs)")
	daemon := fl.Bool("daemon", false, "run in the background; return once mounted")
	metrics := fl.String("metrics", "", "serve Prometheus metrics on `ADDR` (a loopback host:port, e.g. 127.0.0.1:9100)")
	cacheMode := fl.String("cache-mode", fuse.CacheWriteback.String(), "kernel caching: writeback, writethrough or direct")
	size := fl.String("size", "1GiB", "size of a --memory filesystem: bytes, or with a KiB, MiB or GiB suffix")
	cache := fl.String("cache-bytes", "256MiB", "the engine's page cache size")
	dirtyRatio := fl.Int("max-dirty-ratio", 20, "percentage of the kernel's dirty page limit the mount may hold dirty in the\n"+
		"writeback cache (the bdi max_ratio; 0 keeps the kernel's 1% for FUSE, which makes writers\n"+
		"wait for writeback early; raising it needs root)")
	noDiscard := fl.Bool("no-discard", false, "keep the blocks freed on an image allocated in its data file (by default each commit\n"+
		"punches them out, giving the space back to the host; holefs fstrim does it later)")
	debug := fl.Bool("debug", false, "log every FUSE request to stderr")
	transport := fl.String("transport", fuse.TransportAuto.String(), "how requests reach the server: uring (FUSE over io_uring, Linux 6.14+ with\n"+
		fuse.URingParam+" Y; root), dev (read and write /dev/fuse) or auto (uring where\n"+
		"the kernel offers it, else dev)")
	zoneErrors := fl.String("zone-errors", "", "a zoned image's policy for zone I/O errors, zonefs's errors= option:\n"+
		"remount-ro (the default), zone-ro, zone-offline or repair")
	zoneExplicit := fl.Bool("zone-explicit-open", false, "a zoned image's explicit-open option (zonefs): opening a sequential\n"+
		"file for writing opens its zone, EBUSY past the device's max-open limit")
	allowOther := fl.Bool("allow-other", false, "let users other than the mounter use the mount (the kernel checks their\n"+
		"permissions); a mounter other than root needs user_allow_other in "+fuseConf)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs mount [--memory | --image PATH] [flags] MOUNTPOINT\n\n"+
			"Mounts a holefs filesystem on MOUNTPOINT through FUSE and serves it until it is\n"+
			"unmounted (holefs umount MOUNTPOINT) or the process gets SIGINT or SIGTERM.\n"+
			"Without --memory or --image it mounts the default image, %s,\n"+
			"made on first use (%s, sparse: it takes disk space as it is written).\n\nFlags:\n",
			defaultImagePath(), formatBytes(holefs.DefaultImageSize))
		fl.PrintDefaults()
	}
	rest, err := parseArgs(fl, args, stdout, stderr)
	if err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "holefs mount: "+format+"\n", a...)
		return errUsage
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case len(rest) == 0:
		return usageErr("missing MOUNTPOINT (holefs mount -h for help)")
	case len(rest) > 1:
		return usageErr("unexpected argument %q", rest[1])
	case *memory && *image != "":
		return usageErr("--memory and --image are exclusive")
	case set["size"] && !*memory:
		return usageErr("--size is the size of a --memory filesystem; an image's size is set when it is made (holefs mkfs --size)")
	case *noDiscard && *memory:
		return usageErr("--no-discard is for images: a --memory filesystem has no data file")
	case (set["zone-errors"] || *zoneExplicit) && *memory:
		return usageErr("--zone-errors and --zone-explicit-open are for zoned images (holefs mkfs --zoned)")
	}
	if (set["zone-errors"] || *zoneExplicit) && !*memory {
		// An image that does not exist yet is left to the "no image"
		// error, except the default one, which mount makes unzoned.
		path := *image
		if path == "" {
			path = defaultImagePath()
		}
		if _, err := os.Stat(path); (err == nil || *image == "") && holefs.ZonedImageData(path) == "" {
			return usageErr("--zone-errors and --zone-explicit-open are for zoned images (holefs mkfs --zoned); %s is not one", path)
		}
	}
	if _, err := zonefs.ParseErrors(*zoneErrors); err != nil {
		return usageErr("--zone-errors: %v", err)
	}
	mode, err := fuse.ParseCacheMode(*cacheMode)
	if err != nil {
		return usageErr("--cache-mode: %v", err)
	}
	tr, err := fuse.ParseTransport(*transport)
	if err != nil {
		return usageErr("--transport: %v", err)
	}
	sizeBytes, err := parseBytes(*size)
	if err == nil && sizeBytes == 0 {
		err = errors.New("a filesystem cannot have size 0 (leave --size out for the default, 1GiB)")
	}
	if err != nil {
		return usageErr("--size: %v", err)
	}
	cacheBytes, err := parseBytes(*cache)
	if err == nil && cacheBytes == 0 {
		err = errors.New("the page cache cannot have size 0 (leave --cache-bytes out for the default, 256MiB)")
	}
	if err != nil {
		return usageErr("--cache-bytes: %v", err)
	}
	if *dirtyRatio < 0 || *dirtyRatio > 100 {
		return usageErr("--max-dirty-ratio %d: not a percentage", *dirtyRatio)
	}
	if !set["max-dirty-ratio"] && os.Geteuid() != 0 {
		*dirtyRatio = 0 // only root may raise it; the default then is the kernel's
	}
	if *metrics != "" && !checkLoopback(*metrics) {
		return usageErr("--metrics %s: not a loopback host:port; metrics have no authentication and are served on 127.0.0.1, ::1 or localhost only", *metrics)
	}
	mp, err := absDir(rest[0])
	if err != nil {
		return err
	}
	// A daemon runs in /: every path it is given must already be
	// absolute.
	if *image != "" {
		if *image, err = filepath.Abs(*image); err != nil {
			return err
		}
	}
	// Everything that can be checked without changing anything is
	// checked before anything changes, in the parent of a daemon too, so
	// a mistake is reported on the terminal.
	if err := checkMountpoint(mp); err != nil {
		return err
	}
	if err := checkFUSE(); err != nil {
		return err
	}
	if *allowOther && os.Geteuid() != 0 {
		if err := checkAllowOther(fuseConf); err != nil {
			return err
		}
	}
	source := *image
	if !*memory && source == "" {
		source = defaultImagePath()
	}
	if *image != "" {
		if err := checkImage(*image); err != nil {
			return err
		}
	}
	var metricsLn net.Listener
	if *metrics != "" && os.Getenv(daemonEnv) == "" {
		// Fail early on a taken port; a daemon's parent only checks.
		if metricsLn, err = net.Listen("tcp", *metrics); err != nil {
			return fmt.Errorf("--metrics %s: %v", *metrics, err)
		}
		if *daemon {
			metricsLn.Close()
			metricsLn = nil
		}
	}
	if *daemon && os.Getenv(daemonEnv) == "" {
		_, serr := os.Stat(source)
		creating := !*memory && errors.Is(serr, fs.ErrNotExist)
		if err := spawnDaemon(daemonArgs(fl, mp), mp); err != nil {
			return err
		}
		if creating {
			reportDefaultImage(stderr, source)
		}
		return nil
	}
	if *debug && os.Getenv(daemonEnv) != "" {
		*debug = false // a daemon has no terminal to log to
	}
	m := &mounter{mp: mp, memory: *memory, source: source, mode: mode, transport: tr, sizeBytes: sizeBytes, noDiscard: *noDiscard, zoneErrors: *zoneErrors, zoneExplicit: *zoneExplicit,
		cacheBytes: cacheBytes, dirtyRatio: *dirtyRatio, allowOther: *allowOther, metricsAddr: *metrics, metricsLn: metricsLn, debug: *debug, stderr: stderr}
	return m.run()
}

// mounter is one holefs mount run.
type mounter struct {
	mp           string
	memory       bool
	source       string // the image path; unused with memory
	mode         fuse.CacheMode
	transport    fuse.Transport
	sizeBytes    int64
	noDiscard    bool
	zoneErrors   string // errors= of a zoned image
	zoneExplicit bool   // explicit-open of a zoned image
	cacheBytes   int64
	dirtyRatio   int
	allowOther   bool
	metricsAddr  string
	metricsLn    net.Listener // already listening on metricsAddr, if set
	debug        bool
	stderr       io.Writer
}

// run mounts, reports readiness to a daemon's parent, serves until
// unmounted or signalled, and shuts down cleanly.
func (m *mounter) run() (err error) {
	// Signals are caught from the start: one arriving once the mount is
	// there must unmount it, not kill the server under it.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ready := daemonPipe()
	defer func() {
		if ready != nil && err != nil {
			fmt.Fprintf(ready, "%v\n", err)
			ready.Close()
		}
	}()
	fsys, err := m.open()
	if err != nil {
		return err
	}
	srv, err := fuse.Mount(m.mp, fsys, fuse.Options{Cache: m.mode, Transport: m.transport, FsName: m.fsName(), MaxDirtyRatio: m.dirtyRatio, AllowOther: m.allowOther, Debug: m.debug})
	if err != nil {
		_ = fsys.Close()
		return mountError(m.mp, err)
	}
	src := &statsSource{fsys: fsys, srv: srv, source: m.fsName(), lockMode: holefs.LockInvalidate.String(), started: time.Now()}
	// The state goes last: holefs umount waits for it to go, so that the
	// image is closed when it returns.
	shutdown := func() error {
		err := closeFS(fsys)
		removeState(m.mp)
		return err
	}
	hs := &http.Server{Handler: metricsHandler(src), ReadHeaderTimeout: 5 * time.Second}
	defer hs.Close()
	if err := m.serveMetrics(hs); err != nil {
		_ = srv.Unmount()
		_ = shutdown()
		return err
	}
	if err := writeState(mountState{PID: os.Getpid(), Mountpoint: m.mp, Source: m.fsName(), CacheMode: m.mode.String(),
		Metrics: m.metricsAddr, Socket: statePath(m.mp, ".sock")}); err != nil {
		_ = srv.Unmount()
		_ = shutdown()
		return fmt.Errorf("state file in %s: %v", stateDir(), err)
	}
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
		ready = nil
	} else {
		fmt.Fprintf(m.stderr, "holefs: %s mounted on %s (%s cache); holefs umount %s or Ctrl-C to unmount\n",
			m.fsName(), m.mp, m.mode, m.mp)
	}
	select {
	case <-srv.Done(): // unmounted from outside
	case sig := <-sigs:
		m.unmountOnSignal(srv, fsys, sig, sigs)
	}
	return shutdown()
}

// unmountOnSignal unmounts after SIGINT or SIGTERM. A busy mount is
// detached and the server goes on until the files open on it are closed;
// a second signal stops waiting: the data is synced and the process
// exits, and what is still open fails with ENOTCONN.
func (m *mounter) unmountOnSignal(srv *fuse.Server, fsys *holefs.FS, sig os.Signal, sigs chan os.Signal) {
	err := srv.Unmount()
	if err == nil {
		return
	}
	if !errors.Is(err, syscall.EBUSY) {
		fmt.Fprintf(m.stderr, "holefs: %v\n", err)
	}
	if err := srv.Detach(); err != nil {
		fmt.Fprintf(m.stderr, "holefs: %v\n", err)
	}
	fmt.Fprintf(m.stderr, "holefs: %v: %s is busy; detached it, serving the files still open until they are closed (signal again to stop now)\n", sig, m.mp)
	select {
	case <-srv.Done():
	case <-sigs:
		if err := fsys.Sync(); err != nil {
			fmt.Fprintf(m.stderr, "holefs: sync: %v\n", err)
		}
		removeState(m.mp)
		os.Exit(1)
	}
}

// closeFS flushes and closes the filesystem.
func closeFS(fsys *holefs.FS) error {
	if err := fsys.Close(); err != nil {
		return fmt.Errorf("closing the filesystem: %v", err)
	}
	return nil
}

// fsName is what /proc/mounts shows as the source.
func (m *mounter) fsName() string {
	if m.memory {
		return "memory"
	}
	return m.source
}

// open opens the filesystem to mount, creating the default image on first
// use.
func (m *mounter) open() (*holefs.FS, error) {
	opts := holefs.Options{CacheBytes: m.cacheBytes, NoDiscard: m.noDiscard, ZoneErrors: m.zoneErrors, ZoneExplicitOpen: m.zoneExplicit}
	if m.memory {
		opts.SizeBytes = m.sizeBytes
		return holefs.Open("", opts)
	}
	if _, err := os.Stat(m.source); errors.Is(err, fs.ErrNotExist) && m.source == defaultImagePath() {
		if err := os.MkdirAll(filepath.Dir(m.source), 0o700); err != nil {
			return nil, fmt.Errorf("creating the default image: %v", err)
		}
		if err := holefs.Mkfs(m.source, holefs.MkfsOptions{}); err != nil {
			return nil, fmt.Errorf("creating the default image: %v", err)
		}
		if os.Getenv(daemonEnv) == "" {
			reportDefaultImage(m.stderr, m.source) // a daemon's parent says it
		}
	}
	fsys, err := holefs.Open(m.source, opts)
	if err != nil {
		return nil, imageError(m.source, err)
	}
	return fsys, nil
}

// reportDefaultImage says that the default image was made, and where.
func reportDefaultImage(w io.Writer, path string) {
	fmt.Fprintf(w, "holefs: created the default image %s (%s, sparse: it takes disk space as it is written; "+
		"holefs mkfs makes others, holefs mount --image mounts them)\n", path, formatBytes(holefs.DefaultImageSize))
}

// serveMetrics serves the metrics on the mount's Unix socket and, with
// --metrics, on its TCP address.
func (m *mounter) serveMetrics(srv *http.Server) error {
	if err := os.MkdirAll(stateDir(), 0o700); err != nil {
		return fmt.Errorf("state directory %s: %v", stateDir(), err)
	}
	sock := statePath(m.mp, ".sock")
	_ = os.Remove(sock) // left by a mount that was killed
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("stats socket %s: %v", sock, err)
	}
	go srv.Serve(ln)
	if m.metricsAddr != "" {
		if m.metricsLn == nil {
			if m.metricsLn, err = net.Listen("tcp", m.metricsAddr); err != nil {
				return fmt.Errorf("--metrics %s: %v", m.metricsAddr, err)
			}
		}
		go srv.Serve(m.metricsLn)
	}
	return nil
}

// defaultImagePath returns the image holefs mount uses without --memory or
// --image: $XDG_DATA_HOME/holefs/default.img, with XDG_DATA_HOME
// defaulting to ~/.local/share.
func defaultImagePath() string {
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" || !filepath.IsAbs(data) {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/"
		}
		data = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(data, "holefs", "default.img")
}

// checkMountpoint checks that dir can be mounted on: an existing directory
// that is not already a mount point.
func checkMountpoint(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("mount point %s does not exist: create it (mkdir -p %s)", dir, dir)
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("mount point %s is a FUSE mount whose server is gone: clear it with holefs umount --lazy %s", dir, dir)
	case err != nil:
		return fmt.Errorf("mount point %s: %v", dir, err)
	case !st.IsDir():
		return fmt.Errorf("mount point %s is not a directory: mount on a directory", dir)
	}
	if e, ok, err := fuse.FindMount(dir); err == nil && ok {
		return fmt.Errorf("%s is already a mount point (%s, %s): unmount it first (holefs umount %s) or choose another directory", dir, e.FSType, e.Source, dir)
	}
	return nil
}

// checkFUSE checks that this process can mount a FUSE filesystem.
func checkFUSE() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no /dev/fuse: load the FUSE module (modprobe fuse), or give the container the device (--device /dev/fuse)")
	case err != nil && os.Geteuid() == 0:
		return fmt.Errorf("cannot open /dev/fuse: %v: give the container access to the device", err)
	}
	if err == nil {
		f.Close()
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			if _, err := exec.LookPath("fusermount"); err != nil {
				return fmt.Errorf("mounting needs root, or the fusermount3 helper (package fuse3): run holefs mount as root or install fuse3")
			}
		}
	}
	return nil
}

// fuseConf is FUSE's configuration, where root lets users mount with
// allow_other (fusermount3 refuses it otherwise).
const fuseConf = "/etc/fuse.conf"

// checkAllowOther checks that the FUSE configuration at conf lets a user
// other than root mount with allow_other: a line user_allow_other.
func checkAllowOther(conf string) error {
	b, err := os.ReadFile(conf)
	if err == nil {
		for line := range strings.Lines(string(b)) {
			if strings.TrimSpace(line) == "user_allow_other" {
				return nil
			}
		}
	}
	return fmt.Errorf("--allow-other needs root or a line user_allow_other in %s (added by root)", conf)
}

// checkImage checks that an image named with --image exists.
func checkImage(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no image at %s: create one with holefs mkfs %s, or use --memory", path, path)
	}
	return nil
}

// imageError turns a failure to open an image into a one-line error that
// says what to do.
func imageError(path string, err error) error {
	var errno syscall.Errno
	errors.As(err, &errno)
	cause := err.Error()
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		cause = pe.Err.Error()
	}
	switch errno {
	case syscall.EBUSY:
		return fmt.Errorf("image %s: %s", path, cause) // names the holder and the fix
	case syscall.EUCLEAN:
		return fmt.Errorf("image %s is corrupt (%s): check and repair it with holefs fsck %s", path, cause, path)
	case syscall.ENOENT, syscall.ENOTDIR:
		return fmt.Errorf("no image at %s (%s): create one with holefs mkfs %s", path, cause, path)
	}
	return fmt.Errorf("cannot open image %s: %s", path, cause)
}

// mountError turns a failure of mount(2) into a one-line error.
func mountError(dir string, err error) error {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("not permitted to mount on %s (%v): run holefs mount as root", dir, err)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("%s: %v", dir, err)
	}
	return fmt.Errorf("mounting on %s: %v", dir, err)
}

// daemonPipe returns the descriptor a --daemon child reports on, nil in a
// foreground run.
func daemonPipe() *os.File {
	s := os.Getenv(daemonEnv)
	if s == "" {
		return nil
	}
	fd, err := strconv.Atoi(s)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "ready")
}

// daemonArgs returns the arguments of a --daemon child: the flags set on
// the command line, with their values as parsed (the paths among them
// made absolute), then "--" and the mount point, absolute too.
func daemonArgs(fl *flag.FlagSet, mp string) []string {
	var args []string
	fl.Visit(func(f *flag.Flag) { args = append(args, "--"+f.Name+"="+f.Value.String()) })
	return append(args, "--", mp)
}

// spawnDaemon starts this command again as a daemon (its own session,
// stdin from /dev/null, output to a log in the state directory) and waits
// until it reports that the filesystem is mounted, or why it is not.
func spawnDaemon(args []string, mp string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--daemon: %v", err)
	}
	if err := os.MkdirAll(stateDir(), 0o700); err != nil {
		return fmt.Errorf("--daemon: state directory %s: %v", stateDir(), err)
	}
	logPath := statePath(mp, ".log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("--daemon: %v", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("--daemon: %v", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, append([]string{"mount"}, args...)...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("--daemon: %v", err)
	}
	w.Close()
	line, rerr := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	if rerr == nil && line == "ok" {
		go cmd.Wait() // reaps the daemon should this process outlive it
		return nil
	}
	werr := cmd.Wait()
	if line != "" {
		return errors.New(line)
	}
	return fmt.Errorf("the daemon exited before the mount was ready (%v); see %s", werr, logPath)
}
