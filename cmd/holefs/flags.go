package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseArgs parses a command's flags wherever they stand among its
// arguments ("fsck IMG --repair" as well as "fsck --repair IMG";
// everything after "--" is an argument) and returns the other arguments.
// The usage, asked for with -h or --help, goes to stdout and the error
// returned is flag.ErrHelp; a mistake goes to stderr, with the usage, and
// is returned as errUsage. The command's fl.Usage writes to fl.Output().
func parseArgs(fl *flag.FlagSet, args []string, stdout, stderr io.Writer) ([]string, error) {
	var out bytes.Buffer
	fl.SetOutput(&out)
	defer fl.SetOutput(stderr)
	var rest []string
	for {
		err := fl.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			stdout.Write(out.Bytes())
			return nil, err
		case err != nil:
			stderr.Write(out.Bytes())
			return nil, errUsage
		}
		left := fl.Args()
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			return append(rest, left...), nil
		}
		if len(left) == 0 {
			return rest, nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

// parseOne is parseArgs for a command that takes exactly one argument,
// what it calls what.
func parseOne(fl *flag.FlagSet, args []string, stdout, stderr io.Writer, what string) (string, error) {
	rest, err := parseArgs(fl, args, stdout, stderr)
	if err != nil {
		return "", err
	}
	switch {
	case len(rest) == 0:
		fmt.Fprintf(stderr, "holefs %s: missing the %s (run 'holefs %s -h')\n", fl.Name(), what, fl.Name())
		return "", errUsage
	case len(rest) > 1:
		fmt.Fprintf(stderr, "holefs %s: unexpected argument %q\n", fl.Name(), rest[1])
		return "", errUsage
	}
	return rest[0], nil
}

// parseNone is parseArgs for a command that takes no arguments.
func parseNone(fl *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	rest, err := parseArgs(fl, args, stdout, stderr)
	if err == nil && len(rest) > 0 {
		fmt.Fprintf(stderr, "holefs %s: unexpected argument %q\n", fl.Name(), rest[0])
		return errUsage
	}
	return err
}
