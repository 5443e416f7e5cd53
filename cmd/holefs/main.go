// Command holefs is the holefs tool: it makes, checks and mounts
// filesystems, and tortures, benchmarks and crash-tests the engine.
//
// Its commands are demo (the default: the fill-versus-punch race in every
// lock mode), torture, bench, crash, mkfs, fsck, fstrim, mount, umount,
// stat and help; 'holefs help' lists them with what they do, and
// 'holefs help CMD' (or 'holefs CMD --help') shows one command's flags.
// Flags may come before or after a command's arguments.
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
  holefs mkfs PATH --zoned [--size 64G] [--zone-size 256M] [--conventional 1] [--force]
                          create a zoned image (zonefs: the files cnv/N and seq/N are the zones)
  holefs fsck PATH [--repair [--accept-rollback]]
                          check an image (exit status as e2fsck's); --repair fixes what is safe,
                          --accept-rollback accepts a meta.db that fell back to an older commit
  holefs fstrim PATH      punch an image's free blocks out of its data file, giving the space
                          back (a mount does it as it frees them, unless --no-discard)
  holefs mount [flags] MOUNTPOINT
                          mount a filesystem through FUSE (--allow-other lets other users in):
                          --image PATH, --memory, or the default image,
                          ~/.local/share/holefs/default.img (64 GiB, sparse), made on first use
  holefs umount [--lazy] MOUNTPOINT
                          unmount it and wait until it is flushed and closed
  holefs stat MOUNTPOINT  print a mount's cache, lock and FUSE counters
  holefs help [COMMAND]   print this help, or a command's

Flags may come before or after a command's arguments. Run 'holefs help COMMAND'
(or 'holefs COMMAND --help') for a command's flags.
`

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "demo"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	case len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-':
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
	case "fstrim":
		err = fstrimCmd(args, stdout, stderr)
	case "mount":
		err = mountCmd(args, stdout, stderr)
	case "umount":
		err = umountCmd(args, stdout, stderr)
	case "stat":
		err = statCmd(args, stdout, stderr)
	case "help":
		switch {
		case len(args) == 0:
			fmt.Fprint(stdout, usage)
			return 0
		case len(args) > 1 || args[0] == "help":
			fmt.Fprintf(stderr, "holefs help: want one command, not %q\n", args)
			return 2
		}
		return run([]string{args[0], "--help"}, stdout, stderr)
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
