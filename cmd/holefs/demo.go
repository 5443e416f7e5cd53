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
	fl.SetOutput(stderr)
	backend := fl.String("backend", "extentfs", "backend to run on: extentfs or memfs")
	modes := fl.String("modes", "invalidate,rwsem,none", "comma-separated lock modes to compare")
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
	if *backend != "extentfs" && *backend != "memfs" {
		fmt.Fprintf(stderr, "holefs demo: -backend: unknown backend %q (want extentfs or memfs)\n", *backend)
		return errUsage
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
	total := 0
	row := func(s repro.Scenario, fill, remove string) error {
		fmt.Fprintf(tw, "%s\t%s", fill, remove)
		for _, m := range ms {
			s.Mode = m
			out, err := repro.Run(s)
			switch {
			case errors.Is(err, repro.ErrUnsupported):
				fmt.Fprint(tw, "\tn/a")
				continue
			case err != nil:
				return fmt.Errorf("%v: %w", s, err)
			}
			cell := string(out.Verdict)
			if out.Verdict != repro.OK {
				bad[m]++
				cell = describe[out.Verdict]
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
		total++
		return nil
	}
	for _, fill := range repro.Fills {
		for _, remove := range repro.Removers {
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
	tw.Flush()
	fmt.Fprintln(stdout)
	failed := false
	for _, m := range ms {
		fmt.Fprintf(stdout, "%-10s %2d of %d races exposed stale or foreign data\n", m, bad[m], total)
		if m != pagecache.LockNone && bad[m] > 0 {
			failed = true
		}
	}
	fmt.Fprintln(stdout, "\nLockNone has no fill-path protection and shows the bug; LockInvalidate (holefs's default)")
	fmt.Fprintln(stdout, "and LockRWSem (XFS-style) prevent it; only LockInvalidate lets reads run beside writers.")
	if failed {
		return errors.New("a protected lock mode let a fill path see removed blocks")
	}
	return nil
}

var describe = map[repro.Verdict]string{
	repro.Stale:   "STALE (punched data)",
	repro.Foreign: "FOREIGN (other file's data)",
	repro.Corrupt: "CORRUPT (other file overwritten)",
}
