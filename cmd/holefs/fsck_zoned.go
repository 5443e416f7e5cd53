package main

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/holefs/holefs/blockdev"
)

// fsckZoned checks a zoned image: its zone state decodes (every record's
// checksum, conditions valid for the zone types, write pointers within the
// capacity) and its data file is there; it prints the zone report. There
// is nothing to repair that the report does not already say: a zonefs
// file's size is its write pointer. A damaged state is left uncorrected.
func fsckZoned(data string, repair bool, stdout io.Writer) (int, error) {
	dev, err := blockdev.OpenZonedFile(data)
	switch {
	case errors.Is(err, syscall.EUCLEAN):
		fmt.Fprintf(stdout, "zone state: %v\n", err)
		if repair {
			fmt.Fprintln(stdout, "not repaired: the zone state is the device's own record (holefs mkfs --zoned --force makes a new one, losing the data)")
		}
		return fsckLeft, nil
	case err != nil:
		return fsckFailed, err
	}
	defer dev.Close()
	zones, err := dev.ReportZones(0, dev.NumZones())
	if err != nil {
		return fsckFailed, err
	}
	count := map[blockdev.ZoneCond]int{}
	var conv int
	var written int64
	for _, z := range zones {
		count[z.Cond]++
		if z.Type == blockdev.ZoneConventional {
			conv++
		} else if z.Cond != blockdev.CondOffline {
			written += z.Written()
		}
	}
	o := dev.Options()
	fmt.Fprintf(stdout, "zoned image: %d zones of %s (%d conventional, %d sequential), sequential data %s\n",
		len(zones), formatBytes(o.ZoneBlocks*blockdev.BlockSize), conv, len(zones)-conv, formatBytes(written*blockdev.BlockSize))
	for c := blockdev.CondEmpty; c <= blockdev.CondOffline; c++ {
		if count[c] > 0 {
			fmt.Fprintf(stdout, "  %-13s %d\n", c, count[c])
		}
	}
	if bad := count[blockdev.CondReadOnly] + count[blockdev.CondOffline]; bad > 0 {
		fmt.Fprintf(stdout, "%d zones read-only or offline: their files are immutable or empty (zonefs)\n", bad)
	}
	fmt.Fprintln(stdout, "clean")
	return fsckClean, nil
}
