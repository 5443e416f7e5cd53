// Command fusebench compares the holefs FUSE mount with go-fuse's loopback
// filesystem using fio: 4 KiB psync random reads (warm, and O_DIRECT),
// random writes and a 70/30 mix, on 1 and 2 jobs, with invalidate=0, all in
// one run so the ratios compare like with like.
//
//	sudo go run ./internal/fusebench              # from the module root; needs root and fio
//	go run ./internal/fusebench -runtime 10s -repeat 3 -json out.json
//
// The targets, each a separate server process:
//
//   - holefs in each cache mode: `holefs mount --memory --daemon
//     --cache-mode MODE` (an in-memory extentfs whose page cache holds the
//     whole test file), and writeback again with the kernel's own dirty
//     limit for FUSE (--max-dirty-ratio 0, "kdirty"), all served with
//     go-fuse's /dev/fuse loop (--transport dev); and writeback and direct
//     again over FUSE-over-io_uring (--transport uring, the "-uring"
//     targets; the run sets the fuse module's enable_uring to Y and
//     restores it at the end);
//   - go-fuse's own loopback example (github.com/hanwen/go-fuse/v2/example/
//     loopback, built from the module cache) over a directory in /dev/shm,
//     in its default mode: as root on Linux 6.9 and later it answers OPEN
//     with FUSE passthrough, so the kernel reads and writes the backing
//     file itself;
//   - the same loopback node (fs.NewLoopbackRoot, with the example's
//     options) with passthrough disabled (CAP_PASSTHROUGH not negotiated):
//     every read and write is a request the Go server answers by a system
//     call on the backing file. The example has no switch for this, so this
//     program serves it itself (-serve-loopback).
//
// Warm reads are measured after a first, unmeasured pass has pulled the
// file into the kernel's page cache. The program prints a table with IOPS
// and p99 completion latency per target and the ratios the targets of the
// FUSE issue are stated in.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	hfuse "github.com/holefs/holefs/fuse"
	"golang.org/x/sys/unix"
)

func main() {
	serve := flag.Bool("serve-loopback", false, "serve go-fuse's loopback node without passthrough on MOUNTPOINT ORIG (used by this program)")
	runtimeFlag := flag.Duration("runtime", 5*time.Second, "duration of each measured fio job")
	size := flag.String("size", "256M", "size of the test file (fio size)")
	jsonOut := flag.String("json", "", "also write the results as JSON to `FILE`")
	only := flag.String("targets", "", "comma-separated subset of targets (default: all)")
	repeat := flag.Int("repeat", 1, "run the whole matrix this many times, interleaved, and report medians")
	flag.Parse()
	if *serve {
		if err := serveLoopback(flag.Arg(0), flag.Arg(1)); err != nil {
			fmt.Fprintf(os.Stderr, "fusebench -serve-loopback: %v\n", err)
			os.Exit(1)
		}
		return
	}
	b := &bench{runtime: *runtimeFlag, size: *size, repeat: max(*repeat, 1)}
	if *only != "" {
		b.only = strings.Split(*only, ",")
	}
	err := b.run()
	b.cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fusebench: %v\n", err)
		os.Exit(1)
	}
	b.print(os.Stdout)
	if *jsonOut != "" {
		out, _ := json.MarshalIndent(b.results, "", "  ")
		if err := os.WriteFile(*jsonOut, out, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "fusebench: %v\n", err)
			os.Exit(1)
		}
	}
}

// serveLoopback serves fs.NewLoopbackRoot(orig) on mnt with the options of
// go-fuse's loopback example, and passthrough disabled.
func serveLoopback(mnt, orig string) error {
	root, err := fs.NewLoopbackRoot(orig)
	if err != nil {
		return err
	}
	sec := time.Second
	opts := &fs.Options{
		AttrTimeout:     &sec,
		EntryTimeout:    &sec,
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			DirectMount:          true,
			FsName:               orig,
			Name:                 "loopback",
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		},
	}
	server, err := fs.Mount(mnt, root, opts)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		_ = server.Unmount()
	}()
	server.Wait()
	return nil
}

// target is one mounted filesystem under test.
type target struct {
	name string
	dir  string
	cmd  *exec.Cmd // the server process
}

// result is one fio job on one target.
type result struct {
	Target string  `json:"target"`
	Job    string  `json:"job"`
	Jobs   int     `json:"jobs"`
	IOPS   float64 `json:"iops"`     // reads plus writes
	P99us  float64 `json:"p99_us"`   // the p99 completion latency of the reads (of the writes for randwrite)
	WP99us float64 `json:"wp99_us"`  // of the writes, for the mix
	CPU    float64 `json:"cpu_busy"` // fraction of the machine busy (all processes), from /proc/stat
}

type bench struct {
	runtime time.Duration
	size    string
	repeat  int
	only    []string
	tmp     string
	targets []*target
	// uringWas is the fuse module's enable_uring before this run set it,
	// restored by cleanup; nil if untouched.
	uringWas []byte
	results  []result
}

// job is one fio workload.
type job struct {
	name   string
	args   []string
	warmup bool // run once unmeasured first (warm reads)
}

var jobs = []job{
	{"randread warm", []string{"--rw=randread"}, true}, // warmed by a sequential read of the file
	{"randread O_DIRECT", []string{"--rw=randread", "--direct=1"}, false},
	{"randwrite", []string{"--rw=randwrite"}, false},
	{"randrw 70/30", []string{"--rw=randrw", "--rwmixread=70"}, false},
}

func (b *bench) want(name string) bool {
	if b.only == nil {
		return true
	}
	for _, o := range b.only {
		if o == name {
			return true
		}
	}
	return false
}

func (b *bench) run() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the mounts use mount(2) and the loopback's passthrough needs CAP_SYS_ADMIN")
	}
	if _, err := exec.LookPath("fio"); err != nil {
		return errors.New("needs fio (apt-get install fio)")
	}
	var err error
	if b.tmp, err = os.MkdirTemp("", "fusebench-"); err != nil {
		return err
	}
	shm, err := os.MkdirTemp("/dev/shm", "fusebench-")
	if err != nil {
		return fmt.Errorf("loopback backing directory: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	holefsBin, loopbackBin := filepath.Join(b.tmp, "bin", "holefs"), filepath.Join(b.tmp, "bin", "loopback")
	for _, build := range [][]string{
		{"build", "-o", holefsBin, "./cmd/holefs"},
		{"build", "-o", loopbackBin, "github.com/hanwen/go-fuse/v2/example/loopback"},
	} {
		if out, err := exec.Command("go", build...).CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(build, " "), err, out)
		}
	}
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Join(b.tmp, "run"))
	// holefs mount's default --max-dirty-ratio is 20; the kernel's own 1%
	// for FUSE is the "kdirty" target.
	// The -uring targets serve over FUSE-over-io_uring, the others with
	// go-fuse's /dev/fuse loop.
	for _, h := range []struct{ name, mode, dirty, transport string }{
		{"holefs-writeback", "writeback", "20", "dev"},
		{"holefs-writeback-kdirty", "writeback", "0", "dev"},
		{"holefs-writethrough", "writethrough", "20", "dev"},
		{"holefs-direct", "direct", "20", "dev"},
		{"holefs-writeback-uring", "writeback", "20", "uring"},
		{"holefs-direct-uring", "direct", "20", "uring"},
	} {
		if !b.want(h.name) {
			continue
		}
		if h.transport == "uring" {
			if err := b.enableURing(); err != nil {
				return err
			}
		}
		dir := filepath.Join(b.tmp, h.name)
		cmd := exec.Command(holefsBin, "mount", "--memory", "--size", "2GiB", "--cache-bytes", "1GiB",
			"--cache-mode", h.mode, "--max-dirty-ratio", h.dirty, "--transport", h.transport, "--daemon", dir)
		cmd.Env = env
		if err := b.start(h.name, dir, cmd, true); err != nil {
			return err
		}
	}
	for _, lb := range []struct {
		name string
		cmd  func(dir, orig string) *exec.Cmd
	}{
		{"loopback", func(dir, orig string) *exec.Cmd { return exec.Command(loopbackBin, "-q", "-directmount", dir, orig) }},
		{"loopback-nopt", func(dir, orig string) *exec.Cmd { return exec.Command(self, "-serve-loopback", dir, orig) }},
	} {
		if !b.want(lb.name) {
			continue
		}
		orig := filepath.Join(shm, lb.name)
		if err := os.Mkdir(orig, 0o755); err != nil {
			return err
		}
		dir := filepath.Join(b.tmp, lb.name)
		if err := b.start(lb.name, dir, lb.cmd(dir, orig), false); err != nil {
			return err
		}
	}
	defer os.RemoveAll(shm)
	runs := map[string][]result{}
	var order []string
	for rep := 0; rep < b.repeat; rep++ {
		for _, j := range jobs {
			for _, n := range []int{1, 2} {
				for _, t := range b.targets {
					fmt.Fprintf(os.Stderr, "run %d/%d: %-24s %-18s %d job(s)\n", rep+1, b.repeat, t.name, j.name, n)
					r, err := b.fio(t, j, n)
					if err != nil {
						return err
					}
					key := fmt.Sprintf("%s|%d|%s", r.Job, r.Jobs, r.Target)
					if rep == 0 {
						order = append(order, key)
					}
					runs[key] = append(runs[key], r)
				}
			}
		}
	}
	for _, key := range order {
		b.results = append(b.results, median(runs[key]))
	}
	return nil
}

// enableURing turns on FUSE over io_uring for the run (the fuse module's
// enable_uring, default N), remembering the value to restore.
func (b *bench) enableURing() error {
	if b.uringWas != nil {
		return nil
	}
	old, err := os.ReadFile(hfuse.URingParam)
	if err != nil {
		return fmt.Errorf("the -uring targets need FUSE over io_uring (Linux 6.14+): %v", err)
	}
	if err := os.WriteFile(hfuse.URingParam, []byte("Y"), 0); err != nil {
		return fmt.Errorf("enabling FUSE over io_uring: %v", err)
	}
	b.uringWas = old
	return nil
}

// median returns a result whose numbers are the medians of rs.
func median(rs []result) result {
	m := rs[0]
	pick := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	m.IOPS = pick(func(r result) float64 { return r.IOPS })
	m.P99us = pick(func(r result) float64 { return r.P99us })
	m.WP99us = pick(func(r result) float64 { return r.WP99us })
	m.CPU = pick(func(r result) float64 { return r.CPU })
	return m
}

// start starts a server and waits for its mount. A daemon (holefs mount
// --daemon) returns once mounted; the others keep running.
func (b *bench) start(name, dir string, cmd *exec.Cmd, daemon bool) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t := &target{name: name, dir: dir}
	if daemon {
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, out.String())
		}
	} else {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		t.cmd = cmd
	}
	b.targets = append(b.targets, t)
	deadline := time.Now().Add(10 * time.Second)
	for !mounted(dir) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not mounted after 10 s: %s", name, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// mounted reports whether dir is a FUSE mount point.
func mounted(dir string) bool {
	var st, parent unix.Statfs_t
	if unix.Statfs(dir, &st) != nil || unix.Statfs(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Type == 0x65735546 // FUSE_SUPER_MAGIC
}

// fio runs one job on one target and returns its numbers.
func (b *bench) fio(t *target, j job, jobs int) (result, error) {
	args := []string{"--name=bench", "--filename=" + filepath.Join(t.dir, "fio.dat"), "--size=" + b.size,
		"--bs=4k", "--ioengine=psync", "--invalidate=0", "--group_reporting", "--output-format=json",
		fmt.Sprintf("--numjobs=%d", jobs)}
	args = append(args, j.args...)
	if j.warmup {
		warm := []string{"--name=warm", "--filename=" + filepath.Join(t.dir, "fio.dat"), "--size=" + b.size,
			"--bs=1M", "--ioengine=psync", "--invalidate=0", "--rw=read", "--output-format=json"}
		if _, err := runFio(warm); err != nil {
			return result{}, fmt.Errorf("%s %s warm-up: %v", t.name, j.name, err)
		}
	}
	cpu0 := cpuTimes()
	out, err := runFio(append(args, "--time_based", "--runtime="+b.runtime.String()))
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %v", t.name, j.name, err)
	}
	busy := cpuTimes().busySince(cpu0)
	var rep struct {
		Jobs []struct {
			Read, Write struct {
				IOPS   float64 `json:"iops"`
				ClatNs struct {
					Percentile map[string]float64 `json:"percentile"`
				} `json:"clat_ns"`
			}
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Jobs) == 0 {
		return result{}, fmt.Errorf("%s %s: fio output: %v", t.name, j.name, err)
	}
	rj := rep.Jobs[0]
	r := result{Target: t.name, Job: j.name, Jobs: jobs, IOPS: rj.Read.IOPS + rj.Write.IOPS, CPU: busy,
		P99us: rj.Read.ClatNs.Percentile["99.000000"] / 1000, WP99us: rj.Write.ClatNs.Percentile["99.000000"] / 1000}
	if j.name == "randwrite" {
		r.P99us, r.WP99us = r.WP99us, 0
	}
	return r, nil
}

func runFio(args []string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("fio", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	// fio may print notes before the JSON.
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	return out, nil
}

// cpuStat is the machine's CPU time from /proc/stat.
type cpuStat struct{ busy, total float64 }

func cpuTimes() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	var v [8]float64
	fmt.Sscanf(line, "cpu %f %f %f %f %f %f %f %f", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
	var s cpuStat
	for i, x := range v {
		s.total += x
		if i != 3 && i != 4 { // idle, iowait
			s.busy += x
		}
	}
	return s
}

func (s cpuStat) busySince(before cpuStat) float64 {
	if d := s.total - before.total; d > 0 {
		return (s.busy - before.busy) / d
	}
	return 0
}

// cleanup unmounts every target and stops the servers.
func (b *bench) cleanup() {
	for _, t := range b.targets {
		if err := unix.Unmount(t.dir, 0); err != nil {
			_ = unix.Unmount(t.dir, unix.MNT_DETACH)
		}
		if t.cmd != nil {
			done := make(chan struct{})
			go func() { _ = t.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = t.cmd.Process.Kill()
			}
		}
	}
	// holefs daemons close their filesystems after the unmount; their
	// state goes with them.
	time.Sleep(200 * time.Millisecond)
	if b.tmp != "" {
		_ = os.RemoveAll(b.tmp)
	}
	if b.uringWas != nil {
		_ = os.WriteFile(hfuse.URingParam, b.uringWas, 0)
	}
}

// print prints the results and the ratios of the targets.
func (b *bench) print(w *os.File) {
	fmt.Fprintf(w, "fusebench %s, fio 4 KiB psync, invalidate=0, %s per job, file %s, median of %d runs, %s %s, %d CPUs\n\n",
		time.Now().UTC().Format(time.RFC3339), b.runtime, b.size, b.repeat, runtime.GOOS, kernel(), runtime.NumCPU())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "job\tjobs\ttarget\tIOPS\tp99 µs\twrite p99 µs\tCPU busy\t\n")
	for _, r := range b.results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.1f\t%s\t%.0f%%\t\n", r.Job, r.Jobs, r.Target, r.IOPS, r.P99us, opt(r.WP99us), 100*r.CPU)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nratios (IOPS of holefs / IOPS of the reference; p99 of the reference / p99 of holefs):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "job\tjobs\tholefs mode\treference\tIOPS ratio\tp99 ratio\ttarget\t\n")
	goal := map[string]struct {
		ref  string
		want float64
	}{
		"randread warm":     {"loopback", 1.0},
		"randread O_DIRECT": {"loopback-nopt", 1.5},
		"randwrite":         {"loopback", 3.0},
		"randrw 70/30":      {"loopback", 3.0},
	}
	for _, r := range b.results {
		g, ok := goal[r.Job]
		if !ok || !strings.HasPrefix(r.Target, "holefs-") {
			continue
		}
		ref := b.find(g.ref, r.Job, r.Jobs)
		if ref == nil || ref.IOPS == 0 || r.P99us == 0 {
			continue
		}
		ratio := r.IOPS / ref.IOPS
		verdict := "met"
		if ratio < g.want {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2fx\t%.2fx\t>= %.1fx %s\t\n", r.Job, r.Jobs, strings.TrimPrefix(r.Target, "holefs-"),
			g.ref, ratio, ref.P99us/r.P99us, g.want, verdict)
	}
	tw.Flush()
}

func (b *bench) find(target, job string, jobs int) *result {
	for i := range b.results {
		if r := &b.results[i]; r.Target == target && r.Job == job && r.Jobs == jobs {
			return r
		}
	}
	return nil
}

func opt(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "linux"
	}
	return "linux " + unix.ByteSliceToString(u.Release[:])
}
