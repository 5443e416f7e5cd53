package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/internal/torture"
)

// zstate is one crash state of a zonefs recording: a crash after the
// first n log entries keeping the unflushed writes of sub.
type zstate struct {
	n   int
	sub subset
}

// crashPoints returns the log lengths to cut the recording at: just before
// every flush completes, right after every fsync, reset and remount (their
// return is the moment the model counts them durable), and the end. No
// crash point precedes the device's creation.
func (r *zrecording) crashPoints() []int {
	var ns []int
	for i, e := range r.log[r.first:] {
		if e.Kind == blockdev.EntryFlush {
			ns = append(ns, r.first+i)
		}
	}
	for _, o := range r.w.ops[1:] {
		if o.end >= 0 && (o.kind == zFsync || o.kind == zReset || o.kind == zRemount) {
			ns = append(ns, o.end+1)
		}
	}
	ns = append(ns, len(r.log))
	slices.Sort(ns)
	return slices.Compact(ns)
}

// states returns every crash state to check, extra subsets per point
// besides none and all.
func (r *zrecording) states(extra int) []zstate {
	rng := rand.New(rand.NewPCG(r.seed, 0x7a7375627365747))
	var out []zstate
	for _, n := range r.crashPoints() {
		for _, s := range subsets(blockdev.Unflushed(r.log, n), extra, rng) {
			out = append(out, zstate{n: n, sub: s})
		}
	}
	return out
}

// describe says where crash state s is, for a violation report.
func (r *zrecording) describe(s zstate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "zonefs seed %d, crash after log entry %d of %d", r.seed, s.n, len(r.log))
	for i := len(r.w.ops) - 1; i > 0; i-- {
		if o := r.w.ops[i]; o.start < s.n {
			state := "during"
			if o.end >= 0 && o.end < s.n {
				state = "after"
			}
			fmt.Fprintf(&b, ", %s op %d (%v)", state, i, o)
			break
		}
	}
	fmt.Fprintf(&b, "; unflushed writes kept: %s", s.sub.name)
	return b.String()
}

// build writes crash state s as a zoned image in dir: the device content
// replayed from the log, split into the data and zone state files.
func (r *zrecording) build(dir string, s zstate) error {
	mem := blockdev.NewMemory(blockdev.ZonedOnBlocks(r.geo))
	defer mem.Close()
	if err := blockdev.Replay(mem, r.log, s.n, func(i int) bool { return s.sub.keep[i] }); err != nil {
		return err
	}
	return blockdev.WriteZonedImage(mem, r.geo, filepath.Join(dir, "data"))
}

// report decodes the image's zone state as fsck does (holefs fsck of a
// zoned image): the zones, or why the state is damaged.
func report(dir string) ([]blockdev.Zone, error) {
	z, err := blockdev.OpenZonedFile(filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	defer z.Close()
	return z.ReportZones(0, z.NumZones())
}

// check rebuilds crash state s in dir, decodes its zone state, mounts it,
// reads every file and checks it against the model; then decodes the
// zone state again (the mount must leave it sound).
func (r *zrecording) check(dir string, s zstate) []Violation {
	where := r.describe(s)
	var vs []Violation
	bad := func(kind, format string, a ...any) {
		vs = append(vs, Violation{Kind: kind, Where: where, Detail: fmt.Sprintf(format, a...)})
	}
	if err := r.build(dir, s); err != nil {
		bad("BUILD", "%v", err)
		return vs
	}
	zones, err := report(dir)
	if err != nil {
		bad("FSCK", "%v", err)
		return vs
	}
	fsys, err := holefs.Open(dir, holefs.Options{Backend: holefs.BackendZonefs})
	if err != nil {
		bad("OPEN", "%v", err)
		return vs
	}
	for zone, zn := range zones {
		name := r.w.name(zone)
		got, err := fsys.ReadFile(name)
		if err != nil {
			bad("READ", "%s: %v", name, err)
			continue
		}
		if fi, err := fsys.Stat(name); err != nil || fi.Size() != int64(len(got)) || fi.Size() != zn.Written()*BlockSize {
			bad("SIZE", "%s: size %v (err %v), read %d bytes, zone %d written to %d blocks", name, sizeOf(fi), err, len(got), zone, zn.Written())
		}
		if zone < r.geo.Conventional {
			r.checkCnv(zone, s.n, got, bad)
		} else {
			r.checkSeq(zone, s.n, zn, got, bad)
		}
	}
	if err := fsys.Close(); err != nil {
		bad("CLOSE", "%v", err)
	}
	if _, err := report(dir); err != nil {
		bad("FSCK", "after the mount: %v", err)
	}
	return vs
}

func sizeOf(fi interface{ Size() int64 }) any {
	if fi == nil {
		return "none"
	}
	return fi.Size()
}

// checkCnv checks a conventional file: each block holds the last write an
// fsync that returned before the crash covered, or a later write that had
// started; zeros only where no such fsync covered any write.
func (r *zrecording) checkCnv(zone, n int, got []byte, bad func(kind, format string, a ...any)) {
	m := r.w.cnv[zone]
	id := uint64(zone) + 1
	for b, h := range m.hist {
		lo := 0 // writes of h[:lo] are older than the durable one
		for _, f := range m.floors {
			if f.end < n && f.counts[b] > 0 {
				lo = max(lo, f.counts[b])
			}
		}
		blk := got[int64(b)*BlockSize:][:BlockSize]
		ok := lo == 0 && matches(blk, id, int64(b), 0)
		for j := max(lo-1, 0); j < len(h) && !ok; j++ {
			ok = r.w.ops[h[j].op].start < n && matches(blk, id, int64(b), h[j].op)
		}
		if !ok {
			want := "zeros or a write"
			if lo > 0 {
				want = fmt.Sprintf("gen %d (fsynced) or later", h[lo-1].op)
			}
			bad(blockKind(blk, id, int64(b), "LOST"), "%s block %d holds %s, want %s", r.w.name(zone), b, describe(blk), want)
		}
	}
}

// checkSeq checks a sequential file: its content must be the first w
// blocks of a version of the file between the last durable one (fsynced,
// or a reset that returned) and the last one an op started before the
// crash, and, in the durable version's epoch, at least as long as it
// (everything fsynced is there); past its appended data, only a finished
// zone's full capacity. So no zeros, foreign or pre-reset data below a
// recovered write pointer, and no write pointer over data not written.
func (r *zrecording) checkSeq(zone, n int, zn blockdev.Zone, got []byte, bad func(kind, format string, a ...any)) {
	m := r.w.seq[zone]
	lo := 0
	for _, f := range m.floors {
		if f.end < n {
			lo = max(lo, f.version)
		}
	}
	hi := lo
	for i := lo + 1; i < len(m.versions); i++ {
		if r.w.ops[m.versions[i].op].start < n {
			hi = i
		}
	}
	id, w := uint64(zone)+1, int64(len(got))/BlockSize
	fits := func(v zversion) bool {
		if v.epoch == m.versions[lo].epoch && w < int64(len(m.versions[lo].data)) {
			return false
		}
		if w > int64(len(v.data)) && !(v.full && w == r.geo.CapacityBlocks) {
			return false
		}
		for b := range w {
			gen := 0
			if b < int64(len(v.data)) {
				gen = v.data[b]
			}
			if !matches(got[b*BlockSize:][:BlockSize], id, b, gen) {
				return false
			}
		}
		return true
	}
	for i := lo; i <= hi; i++ {
		if fits(m.versions[i]) {
			return
		}
	}
	// No version fits: say why, the worst first.
	durable := m.versions[lo]
	name := r.w.name(zone)
	for b := range w {
		blk := got[b*BlockSize:][:BlockSize]
		if k := blockKind(blk, id, b, ""); k != "" {
			bad(k, "%s block %d below the write pointer (%d blocks, %s) holds %s", name, b, w, zn.Cond, describe(blk))
			return
		}
		if sig, _ := torture.ParseBlock(blk); r.epochOf(m, int(sig.Gen)) < durable.epoch {
			bad("STALE", "%s block %d holds %s, written before the zone's reset by op %d, which returned before the crash", name, b, describe(blk), durable.op)
			return
		}
	}
	if w < int64(len(durable.data)) {
		bad("LOST", "%s: write pointer recovered at %d blocks (%s), below the %d of op %d, made durable before the crash", name, w, zn.Cond, len(durable.data), durable.op)
		return
	}
	bad("MISMATCH", "%s: %d blocks (%s) are no version of the file between op %d and the crash", name, w, zn.Cond, durable.op)
}

// epochOf returns the epoch of the version an op of generation gen made,
// -1 if none did.
func (r *zrecording) epochOf(m *seqModel, gen int) int {
	for _, v := range m.versions {
		if v.op == gen {
			return v.epoch
		}
	}
	return -1
}

// blockKind classifies a block that is not what it should be: ZEROS,
// CORRUPT (unsigned), FOREIGN (another file's or offset's), or dflt.
func blockKind(b []byte, id uint64, off int64, dflt string) string {
	sig, st := torture.ParseBlock(b)
	switch {
	case st == torture.BlockZero:
		return "ZEROS"
	case st == torture.BlockCorrupt:
		return "CORRUPT"
	case sig.File != id || sig.Off != off:
		return "FOREIGN"
	}
	return dflt
}

// runZoned is Run for the zonefs backend.
func runZoned(ctx context.Context, cfg Config, progress func(Progress)) (*Report, error) {
	return runZonedWith(ctx, cfg, nil, progress)
}

// runZonedWith records zonefs workloads, the device wrapped by wrap if
// set, and checks their crash states until cfg.States are checked.
func runZonedWith(ctx context.Context, cfg Config, wrap func(blockdev.Device) blockdev.Device, progress func(Progress)) (*Report, error) {
	start := time.Now()
	root, err := os.MkdirTemp(cfg.Dir, "holefs-zcrash-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	rep := &Report{Config: cfg, Kinds: map[string]int{}}
	for i := uint64(0); ctx.Err() == nil; i++ {
		seed := cfg.Seed + i
		r, err := recordZoned(seed, cfg.Ops, wrap)
		if err != nil {
			return nil, fmt.Errorf("seed %d: record the zonefs workload: %w", seed, err)
		}
		rep.Workloads++
		rep.Ops += len(r.w.ops) - 1
		rep.countLog(r.log)
		for _, p := range r.w.runtime {
			rep.add(Violation{Kind: "RUNTIME", Where: fmt.Sprintf("zonefs seed %d, while recording", seed), Detail: p})
		}
		rep.Points += len(r.crashPoints())
		states := make(chan zstate)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for k := range cfg.Workers {
			dir := filepath.Join(root, fmt.Sprintf("c%d", k))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			wg.Go(func() {
				for s := range states {
					vs := r.check(dir, s)
					mu.Lock()
					rep.checked(vs, start, progress)
					mu.Unlock()
				}
			})
		}
		for _, s := range r.states(cfg.Subsets) {
			if ctx.Err() != nil {
				break
			}
			states <- s
		}
		close(states)
		wg.Wait()
		if cfg.States == 0 || rep.States >= cfg.States {
			break
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, ctx.Err()
}
