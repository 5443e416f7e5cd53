package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// termBar returns a progress bar of max steps on w when w is a terminal,
// and nil otherwise: off a terminal the long-running commands print a line
// every few seconds instead. extra options follow the common ones.
func termBar(w io.Writer, desc string, max int64, extra ...progressbar.Option) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	opts := append([]progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
	}, extra...)
	return progressbar.NewOptions64(max, opts...)
}
