package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/meta"
)

// fsck's exit statuses, e2fsck's.
const (
	fsckClean     = 0  // no errors
	fsckCorrected = 1  // errors found and all fixed
	fsckLeft      = 4  // errors left uncorrected
	fsckFailed    = 8  // operational error: the check could not run
	fsckUsage     = 16 // usage or syntax error
)

// fsckCmd checks an image, and with --repair fixes it. Its exit status
// is e2fsck's, carried to run by an exitStatus.
func fsckCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("fsck", flag.ContinueOnError)
	repair := fl.Bool("repair", false, "fix what is safe to fix (opens the image read-write)")
	quiet := fl.Bool("quiet", false, "no progress output")
	accept := fl.Bool("accept-rollback", false, "with --repair, accept a meta.db that fell back to an older commit (what was committed since is lost)")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs fsck PATH [--repair [--accept-rollback]]\n\n"+
			"Checks every invariant of the image at PATH and reports each problem with its\n"+
			"inode, page or name. Without --repair it only reads, and refuses (EBUSY) an image\n"+
			"another process has open for writing. --repair fixes what is safe and says what it\n"+
			"changed: damaged records are removed, unreachable inodes go to /lost+found, link\n"+
			"counts and counters are rewritten, a block owned twice stays with one owner and\n"+
			"the other's pages there become a hole. A meta.db that fell back to an older\n"+
			"commit (a damaged meta page) is reported as a rollback; mount and open refuse\n"+
			"it until --repair --accept-rollback accepts the loss.\n\n"+
			"Exit status: 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"+
			"8 operational error, 16 usage error.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	path, err := parseOne(fl, args, stdout, stderr, "image path")
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitStatus{code: fsckUsage}
	}
	var prog *fsckProgress
	if !*quiet {
		prog = newFsckProgress(stderr)
	}
	if *accept && !*repair {
		fmt.Fprintln(stderr, "holefs fsck: --accept-rollback needs --repair")
		return exitStatus{code: fsckUsage}
	}
	code, err := fsck(path, *repair, *accept, stdout, prog)
	return exitStatus{code: code, err: err}
}

// exitStatus is a command's exit status, and the error to print, if any.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e exitStatus) Unwrap() error { return e.err }

// fsck checks (or repairs) the image at path, prints the findings and
// returns the exit status.
func fsck(path string, repair, accept bool, stdout io.Writer, prog *fsckProgress) (int, error) {
	if data := holefs.ZonedImageData(path); data != "" {
		return fsckZoned(data, repair, stdout)
	}
	img, err := openForFsck(path, repair, accept)
	var pre []meta.Finding
	if errors.Is(err, syscall.EUCLEAN) {
		// The superblocks or the buckets, which Open needs: Precheck
		// tells which, and with repair mends them from a valid copy.
		var perr error
		pre, perr = meta.Precheck(path, repair)
		if perr != nil {
			return fsckFailed, perr
		}
		printFindings(stdout, pre, repair)
		if fixed, left := countErrors(pre); left > 0 {
			// Without a valid, agreeing pair of superblocks nothing
			// else can be checked.
			summarize(stdout, path, fixed, left, 0, repair || !repairable(pre))
			return fsckLeft, nil
		}
		img, err = openForFsck(path, repair, accept)
	}
	if err != nil {
		return fsckFailed, err
	}
	fmt.Fprintf(stdout, "%s: %s, %d blocks of %d bytes, uuid %s, features %s\n", path,
		formatBytes(img.SB.Blocks*int64(img.SB.BlockSize)), img.SB.Blocks, img.SB.BlockSize, formatUUID(img.SB.UUID), featureNames(img.SB))
	if n := img.WALBlocks(); n > 0 {
		fmt.Fprintf(stdout, "%s: write-ahead log of %d blocks after the data blocks", path, n)
		switch first, last := img.Replayed(); {
		case last == 0:
			fmt.Fprintf(stdout, ", nothing to replay\n")
		case img.ReadOnly():
			fmt.Fprintf(stdout, ": commits %d to %d not yet in %s, checked as replayed (the next mount replays them)\n", first, last, meta.MetaFile)
		default:
			fmt.Fprintf(stdout, ": commits %d to %d replayed into %s\n", first, last, meta.MetaFile)
		}
	}
	check := meta.Check
	if repair && !img.ReadOnly() {
		check = meta.Repair
	}
	opts := meta.CheckOptions{}
	if prog != nil {
		opts.Progress = prog.update
	}
	closeDev, err := ext2fs.SetFsck(img, &opts)
	if err != nil {
		img.Close()
		return fsckFailed, err
	}
	rep, err := check(img, opts)
	if cerr := closeDev(); err == nil {
		err = cerr
	}
	if prog != nil {
		prog.finish()
	}
	if cerr := img.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fsckFailed, err
	}
	printFindings(stdout, rep.Findings, repair)
	fixed, left := countErrors(append(pre, rep.Findings...))
	// The totals are of the image as Repair leaves it.
	when := ""
	if !repair && left > 0 {
		when = "after --repair: "
	}
	// An ext2 image maps its files with block maps, not extents: say
	// what they hold.
	maps := plural(rep.Extents, "extent", "extents")
	if img.SB.Incompat&meta.IncompatExt2 != 0 {
		maps = plural(rep.Owned-rep.Indirect, "mapped block", "mapped blocks") + " and " + plural(rep.Indirect, "indirect block", "indirect blocks")
	}
	fmt.Fprintf(stdout, "%s: %s%s (%s, %s, %s, %s, %s), %s, %d of %d data blocks in use (%s)\n", path, when,
		plural(rep.Inodes, "inode", "inodes"), plural(rep.Dirs, "directory", "directories"), plural(rep.Files, "file", "files"),
		plural(rep.Symlinks, "symlink", "symlinks"), plural(rep.Special, "special file", "special files"), plural(rep.Orphans, "orphan", "orphans"), maps,
		rep.Owned, img.SB.Blocks-1, formatBytes(rep.Owned*meta.BlockSize))
	all := append(pre, rep.Findings...)
	summarize(stdout, path, fixed, left, rep.Count(meta.Warning), repair || !repairable(all))
	if rolledBack(all) {
		fmt.Fprintf(stdout, "%s: the rollback stays until accepted: holefs fsck --repair --accept-rollback %s\n", path, path)
	}
	switch {
	case left > 0:
		return fsckLeft, nil
	case fixed > 0:
		return fsckCorrected, nil
	}
	return fsckClean, nil
}

// openForFsck opens the image to check or repair it. A rolled-back image
// that --accept-rollback does not accept is only checked: repairing it
// would commit on top of the loss.
func openForFsck(path string, repair, accept bool) (*meta.Image, error) {
	img, err := meta.Open(path, meta.OpenOptions{ReadOnly: !repair, AcceptRollback: accept})
	var rb *meta.RollbackError
	if repair && errors.As(err, &rb) {
		return meta.Open(path, meta.OpenOptions{ReadOnly: true})
	}
	return img, err
}

// countErrors counts the errors fixed and left.
func countErrors(fs []meta.Finding) (fixed, left int) {
	r := meta.Report{Findings: fs}
	return r.Errors()
}

// printFindings prints each finding, and what --repair did or would do.
func printFindings(w io.Writer, fs []meta.Finding, repair bool) {
	for _, f := range fs {
		fmt.Fprintln(w, f)
		switch {
		case f.Fix == "":
		case f.Fixed:
			fmt.Fprintf(w, "    fixed: %s\n", f.Fix)
		case repair:
			fmt.Fprintf(w, "    not fixed: %s\n", f.Fix)
		default:
			fmt.Fprintf(w, "    --repair would %s\n", f.Fix)
		}
	}
}

// repairable reports whether --repair would fix any error left.
func repairable(fs []meta.Finding) bool {
	for _, f := range fs {
		if f.Severity == meta.Error && !f.Fixed && f.Fix != "" {
			return true
		}
	}
	return false
}

// rolledBack reports whether fs has a rollback not accepted, which no
// repair fixes without --accept-rollback.
func rolledBack(fs []meta.Finding) bool {
	for _, f := range fs {
		if f.Kind == meta.KindRollback && !f.Fixed {
			return true
		}
	}
	return false
}

// summarize prints the verdict line; final: --repair ran, or would fix
// nothing more.
func summarize(w io.Writer, path string, fixed, left, warnings int, final bool) {
	fmt.Fprintf(w, "%s: ", path)
	errs := func(n int) string { return plural(int64(n), "error", "errors") }
	switch {
	case left > 0 && final:
		fmt.Fprintf(w, "%s fixed, %d left uncorrected (fsck cannot repair them)", errs(fixed), left)
	case left > 0:
		fmt.Fprintf(w, "%s left uncorrected (run holefs fsck --repair)", errs(left))
	case fixed > 0:
		fmt.Fprintf(w, "%s fixed", errs(fixed))
	default:
		fmt.Fprint(w, "clean")
	}
	if warnings > 0 {
		fmt.Fprintf(w, ", %s", plural(int64(warnings), "warning", "warnings"))
	}
	fmt.Fprintln(w)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// fsckProgress shows a check's progress on stderr: a bar on a terminal,
// a line every few seconds otherwise (none for a check that takes less).
type fsckProgress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	start time.Time
	last  time.Time
}

func newFsckProgress(w io.Writer) *fsckProgress {
	p := &fsckProgress{w: w, start: time.Now()}
	p.last = p.start
	p.bar = termBar(w, "fsck", 1000, progressbar.OptionSetPredictTime(false))
	return p
}

func (p *fsckProgress) update(pr meta.Progress) {
	desc := pr.Phase
	if pr.Total > 0 {
		desc = fmt.Sprintf("%s %d/%d", pr.Phase, pr.Done, pr.Total)
	}
	if p.bar != nil {
		p.bar.Describe(desc)
		frac := int64(0)
		if pr.Total > 0 {
			frac = pr.Done * 1000 / pr.Total
		}
		_ = p.bar.Set64(frac)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 2*time.Second {
		p.last = now
		fmt.Fprintf(p.w, "fsck: %s: %s\n", now.Sub(p.start).Round(time.Second), desc)
	}
}

func (p *fsckProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
