// Command holefs is the holefs tool.
//
// Usage:
//
//	holefs [demo] [flags]   reproduce the fill-vs-punch race on an in-memory
//	                        filesystem in every lock mode (the default command)
//	holefs mkfs PATH        create an image
//	holefs fsck PATH        check an image, and with --repair fix it
//	holefs help             print this help
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `holefs: a filesystem engine whose page cache stays coherent when blocks are removed.

Usage:
  holefs [demo] [flags]   reproduce the race between page-cache fills and hole
                          punching on an in-memory filesystem, in every lock mode
  holefs torture [flags]  random concurrent race torture with a data checker (-h for flags)
  holefs bench [flags]    benchmark workloads per lock mode, as a table, JSON or plot (-h for flags)
  holefs crash [flags]    check every crash state of recorded workloads on images (-h for flags)
  holefs mkfs PATH [--size 64G] [--data-checksums] [--no-reflink] [--force]
                          create an image: a directory holding a sparse data file and meta.db
  holefs fsck PATH [--repair]
                          check an image (exit status as e2fsck's); --repair fixes what is safe
  holefs mount [flags] MOUNTPOINT
                          mount a filesystem through FUSE: the default image, --image PATH
                          or --memory (-h for flags)
  holefs umount [--lazy] MOUNTPOINT
                          unmount it and wait until it is flushed and closed
  holefs stat MOUNTPOINT  print a mount's cache, lock and FUSE counters
  holefs help             print this help

Run 'holefs demo -h' for the demo's flags.
`

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "demo"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "demo":
		err = demo(args, stdout, stderr)
	case "torture":
		err = tortureCmd(args, stdout, stderr)
	case "bench":
		err = benchCmd(args, stdout, stderr)
	case "crash":
		err = crashCmd(args, stdout, stderr)
	case "mkfs":
		err = mkfsCmd(args, stdout, stderr)
	case "fsck":
		err = fsckCmd(args, stdout, stderr)
	case "mount":
		err = mountCmd(args, stdout, stderr)
	case "umount":
		err = umountCmd(args, stdout, stderr)
	case "stat":
		err = statCmd(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "holefs: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var status exitStatus
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &status):
		if status.err != nil {
			fmt.Fprintf(stderr, "holefs %s: %v\n", cmd, status.err)
		}
		return status.code
	}
	fmt.Fprintf(stderr, "holefs %s: %v\n", cmd, err)
	return 1
}
