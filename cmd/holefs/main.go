// Command holefs is the holefs tool.
//
// Usage:
//
//	holefs [demo] [flags]   reproduce the fill-vs-punch race on an in-memory
//	                        filesystem in every lock mode (the default command)
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
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "holefs: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "holefs %s: %v\n", cmd, err)
	return 1
}
