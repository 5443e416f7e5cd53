package meta

import (
	"strconv"
	"strings"
)

func utoa(u uint64) string { return strconv.FormatUint(u, 10) }
func itoa(i int64) string  { return strconv.FormatInt(i, 10) }

// quote quotes s for a message, at most maxQuote bytes of it: a damaged
// record's name may be of any length, and an error is one bounded line.
func quote(s string) string {
	if len(s) > maxQuote {
		return strconv.Quote(s[:maxQuote]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return strconv.Quote(s)
}

// clip makes a message of foreign origin (bbolt's) one line of at most
// maxMessage bytes.
func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > maxMessage {
		return s[:maxMessage] + "... (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

const (
	maxQuote   = 64
	maxMessage = 512
)
