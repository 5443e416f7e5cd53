package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/holefs/holefs/internal/repro"
	"github.com/holefs/holefs/pagecache"
)

// demo plays every fill path against every remover in each lock mode, with
// hooks forcing the interleaving of the seed's race, and prints what the
// victim file showed afterwards.
func demo(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	backend := fl.String("backend", "extentfs", "backend to run on: extentfs, ext2, memfs or zonefs (fills racing a zone reset)")
	modes := fl.String("modes", "invalidate,rwsem,none", "comma-separated lock modes to compare")
	fileLock := fl.Bool("file-lock", false, "give each file one invalidate lock for the whole file (Linux's) instead of the range lock")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs demo [flags]\n\n"+
			"Forces, with hooks, the interleaving in which a page-cache fill creates a page and\n"+
			"looks up its block while a hole punch (or zero range, collapse, truncate) has\n"+
			"dropped the page cache but not yet freed the blocks; then another file reuses\n"+
			"the freed block. Prints what the punched file shows afterwards.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	if err := parseNone(fl, args, stdout, stderr); err != nil {
		return err
	}
	var ms []pagecache.LockMode
	for _, name := range strings.Split(*modes, ",") {
		m, err := pagecache.ParseLockMode(strings.TrimSpace(name))
		if err != nil {
			fmt.Fprintf(stderr, "holefs demo: -modes: %v\n", err)
			return errUsage
		}
		ms = append(ms, m)
	}
	if *backend != "extentfs" && *backend != "ext2" && *backend != "memfs" && *backend != "zonefs" {
		fmt.Fprintf(stderr, "holefs demo: -backend: unknown backend %q (want extentfs, ext2, memfs or zonefs)\n", *backend)
		return errUsage
	}
	removers := repro.Removers
	if *backend == "zonefs" {
		removers = repro.ZoneRemovers // zone reset: truncate of a sequential zone file to 0
	}

	fmt.Fprintf(stdout, "holefs demo: page-cache fills racing block removal on an in-memory %s filesystem.\n", *backend)
	fmt.Fprintf(stdout, "Each cell is what the punched file held after both operations returned.\n\n")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "fill path\tremover")
	for _, m := range ms {
		fmt.Fprintf(tw, "\t%s", m)
	}
	fmt.Fprintln(tw)
	bad := map[pagecache.LockMode]int{}
	ran := map[pagecache.LockMode]int{} // races played: the backend lacks some removers
	row := func(s repro.Scenario, fill, remove string) error {
		fmt.Fprintf(tw, "%s\t%s", fill, remove)
		for _, m := range ms {
			s.Mode, s.FileLock = m, *fileLock
			out, err := repro.Run(s)
			switch {
			case errors.Is(err, repro.ErrUnsupported):
				fmt.Fprint(tw, "\tn/a")
				continue
			case err != nil:
				return fmt.Errorf("%v: %w", s, err)
			}
			ran[m]++
			cell := string(out.Verdict)
			if out.Verdict != repro.OK {
				bad[m]++
				cell = describe[out.Verdict]
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
		return nil
	}
	for _, fill := range repro.Fills {
		for _, remove := range removers {
			if err := row(repro.Scenario{Backend: *backend, Fill: fill, Remove: remove}, fill, remove); err != nil {
				return err
			}
		}
	}
	if *backend == "extentfs" {
		if err := row(repro.Scenario{Backend: *backend, Fill: "read", Remove: "punch", Writeback: true}, "read", "punch, then writeback"); err != nil {
			return err
		}
	}
	if *backend == "extentfs" || *backend == "ext2" {
		// DAX: no page cache; a fault maps the device's memory directly.
		for _, fill := range repro.DAXFills {
			for _, remove := range repro.Removers {
				if err := row(repro.Scenario{Backend: *backend, DAX: true, Fill: fill, Remove: remove}, "DAX "+fill, remove); err != nil {
					return err
				}
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	failed := false
	for _, m := range ms {
		fmt.Fprintf(stdout, "%-10s %2d of %d races exposed stale or foreign data\n", m, bad[m], ran[m])
		if m != pagecache.LockNone && bad[m] > 0 {
			failed = true
		}
	}
	fmt.Fprintln(stdout)
	_, none := ran[pagecache.LockNone]
	switch {
	case !none:
	case bad[pagecache.LockNone] > 0:
		fmt.Fprintln(stdout, "LockNone has no fill-path protection and shows the bug.")
	case *backend == "memfs":
		fmt.Fprintln(stdout, "LockNone has no fill-path protection, yet exposed nothing here: on memfs the page cache is the")
		fmt.Fprintln(stdout, "storage, so there is no freed block for a fill to read. Run the demo on extentfs (the default)")
		fmt.Fprintln(stdout, "to see the race.")
	default:
		fmt.Fprintln(stdout, "LockNone has no fill-path protection, yet exposed nothing in this run.")
	}
	var safe []string
	for _, m := range ms {
		if name, ok := protected[m]; ok && ran[m] > 0 && bad[m] == 0 {
			safe = append(safe, name)
		}
	}
	if len(safe) > 0 {
		fmt.Fprintf(stdout, "%s never exposed removed blocks.\n", strings.Join(safe, " and "))
	}
	if failed {
		return errors.New("a protected lock mode let a fill path see removed blocks")
	}
	return nil
}

// protected names the lock modes that protect fill paths.
var protected = map[pagecache.LockMode]string{
	pagecache.LockInvalidate: "LockInvalidate (holefs's default; reads run beside writers)",
	pagecache.LockRWSem:      "LockRWSem (XFS-style)",
}

var describe = map[repro.Verdict]string{
	repro.Stale:   "STALE (removed data)",
	repro.Foreign: "FOREIGN (other file's data)",
	repro.Corrupt: "CORRUPT (other file overwritten)",
}
