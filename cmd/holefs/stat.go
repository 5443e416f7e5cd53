package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/holefs/holefs/fuse"
)

// umountCmd is holefs umount: it unmounts a holefs mount and waits until
// its process has flushed and closed the filesystem.
func umountCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("umount", flag.ContinueOnError)
	lazy := fl.Bool("lazy", false, "detach a busy mount: it goes away when the files open on it are closed")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs umount [--lazy] MOUNTPOINT\n\nFlags:\n")
		fl.PrintDefaults()
	}
	arg, err := parseOne(fl, args, stdout, stderr, "MOUNTPOINT")
	if err != nil {
		return err
	}
	mp, err := absDir(arg)
	if err != nil {
		return err
	}
	e, ok, err := fuse.FindMount(mp)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%s is not mounted", mp)
	case e.FSType != "fuse.holefs":
		return fmt.Errorf("%s is not a holefs mount (it is %s): use umount(8)", mp, e.FSType)
	}
	st, stErr := readState(mp)
	if err := fuse.Unmount(mp, *lazy); err != nil {
		switch {
		case errors.Is(err, syscall.EBUSY):
			return fmt.Errorf("%s is busy (files are open on it): close them, or detach it with holefs umount --lazy %s", mp, mp)
		case errors.Is(err, syscall.EPERM):
			return fmt.Errorf("not permitted to unmount %s: run holefs umount as root", mp)
		}
		return err
	}
	if stErr != nil || *lazy {
		return nil
	}
	// The serving process flushes and closes the filesystem after the
	// unmount, then removes its state: wait for that, so the image is
	// closed and usable when this returns.
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := readState(mp); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !processAlive(st.PID) {
			removeState(mp) // the process died without cleaning up
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unmounted %s, but its holefs process (pid %d) is still closing the filesystem after a minute", mp, st.PID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processAlive reports whether the process pid exists.
func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) != syscall.ESRCH
}

// statCmd is holefs stat: it prints a mount's counters for humans.
func statCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("stat", flag.ContinueOnError)
	asJSON := fl.Bool("json", false, "print the raw snapshot as JSON")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs stat [--json] MOUNTPOINT\n\n"+
			"Prints the page cache, invalidate lock and FUSE counters of a holefs mount\n"+
			"(the numbers its --metrics endpoint exports).\n\nFlags:\n")
		fl.PrintDefaults()
	}
	arg, err := parseOne(fl, args, stdout, stderr, "MOUNTPOINT")
	if err != nil {
		return err
	}
	mp, err := absDir(arg)
	if err != nil {
		return err
	}
	st, err := readState(mp)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not a holefs mount of this user (no state in %s)", mp, stateDir())
	} else if err != nil {
		return err
	}
	if !processAlive(st.PID) {
		return fmt.Errorf("the holefs process of %s (pid %d) is gone: clear the mount with holefs umount --lazy %s", mp, st.PID, mp)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", st.Socket)
		}}}
	resp, err := client.Get("http://holefs/stats.json")
	if err != nil {
		return fmt.Errorf("asking the holefs process of %s (pid %d): %v", mp, st.PID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var s mountStats
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("reading the stats of %s: %v", mp, err)
	}
	printStats(stdout, s, st)
	return nil
}

// printStats prints a snapshot for humans.
func printStats(w io.Writer, s mountStats, st mountState) {
	c := s.Cache
	fmt.Fprintf(w, "%s: %s, pid %d, up %s, %s kernel cache, lock mode %s\n", s.Mountpoint, s.Source, s.PID,
		time.Since(s.Started).Round(time.Second), s.CacheMode, s.LockMode)
	if st.Metrics != "" {
		fmt.Fprintf(w, "metrics: http://%s/metrics\n", st.Metrics)
	}
	ratio := "-"
	if n := c.Hits + c.Misses; n > 0 {
		ratio = fmt.Sprintf("%.1f%%", 100*float64(c.Hits)/float64(n))
	}
	fmt.Fprintf(w, "\nengine page cache\n")
	row := func(name string, v int64, note string) { fmt.Fprintf(w, "  %-22s %12d  %s\n", name, v, note) }
	row("hits", c.Hits, "hit ratio "+ratio)
	row("misses", c.Misses, "")
	row("fill pages", c.FillPages, "")
	row("readahead pages", c.ReadaheadPages, fmt.Sprintf("%d async windows", c.AsyncReadaheads))
	row("writeback pages", c.WritebackPages, fmt.Sprintf("in %d device writes", c.WritebackIOs))
	row("evictions", c.Evictions, "")
	row("throttled writes", c.ThrottledWrites, "")
	row("cached pages", c.Pages, fmt.Sprintf("of %d (%s); %d dirty, %d unevictable", c.LimitPages, human(c.LimitPages*4096), c.DirtyPages, c.UnevictablePages))
	fmt.Fprintf(w, "\ninvalidate lock waits\n")
	wait := func(name string, n int64, d time.Duration) {
		mean := "-"
		if n > 0 {
			mean = (d / time.Duration(n)).String()
		}
		fmt.Fprintf(w, "  %-22s %12d  waited %s, mean %s\n", name, n, d, mean)
	}
	wait("shared (fills)", c.InvalidateSharedWaits, c.InvalidateSharedWait)
	wait("exclusive (removers)", c.InvalidateExclusiveWaits, c.InvalidateExclusiveWait)
	fmt.Fprintf(w, "\nFUSE\n")
	row("invalidations sent", s.FUSE.Notifications, fmt.Sprintf("%d not cached, %d failed", s.FUSE.NotifyMisses, s.FUSE.NotifyFailures))
	for _, e := range s.FUSE.Errors {
		row(e.Op+" "+e.Errno, e.N, "")
	}
	fmt.Fprintf(w, "\nprocess: %s heap, %d goroutines\n", human(int64(s.HeapBytes)), s.Goroutines)
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
