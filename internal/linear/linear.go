// Package linear records concurrent histories of reads, writes and punches
// of a few pages of one file and checks them for linearizability with
// porcupine: every read must return what some order of the operations,
// consistent with their real-time order, would have returned. A stale page
// cached across a punch, or another file's data in a reused block, makes a
// read return a value no such order allows.
//
// Each page is an independent register (the history is partitioned by
// page): full-page writes store a byte value in every byte, punches store
// zero, reads return the value or "torn" when the page is not uniform.
package linear

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

const pg = 4096

// Config is one recorded run.
type Config struct {
	Backend string
	Mode    holefs.LockMode
	Seed    uint64
	Clients int           // concurrent clients on the file; default 4
	Pages   int           // pages of the file they share; default 4
	Ops     int           // operations per client; default 300
	Window  time.Duration // a remover sleeps this long between dropping pages and freeing blocks, widening the race window; 0 = none
	OutDir  string        // where a failing history's HTML visualization is written; "" = os.TempDir()
}

// Result is the verdict on one history.
type Result struct {
	Ops           int
	Linearizable  bool
	Inconclusive  bool   // the checker timed out
	Visualization string // HTML file of a non-linearizable history
}

type opKind uint8

const (
	opWrite opKind = iota
	opRead
	opMapRead
	opPunch
	opDrop
)

type input struct {
	kind  opKind
	page  int
	value byte // for writes
}

const torn = -1

// Model is the per-page register model of the file.
var Model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byPage := map[int][]porcupine.Operation{}
		for _, op := range h {
			p := op.Input.(input).page
			byPage[p] = append(byPage[p], op)
		}
		out := make([][]porcupine.Operation, 0, len(byPage))
		for _, ops := range byPage {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return 0 },
	Step: func(state, in, out any) (bool, any) {
		v, i := state.(int), in.(input)
		switch i.kind {
		case opWrite:
			return true, int(i.value)
		case opPunch:
			return true, 0
		case opDrop:
			return true, v
		}
		return out.(int) == v, v
	},
	DescribeOperation: func(in, out any) string {
		i := in.(input)
		switch i.kind {
		case opWrite:
			return fmt.Sprintf("write(p%d, %d)", i.page, i.value)
		case opPunch:
			return fmt.Sprintf("punch(p%d)", i.page)
		case opDrop:
			return fmt.Sprintf("drop(p%d)", i.page)
		case opMapRead:
			return fmt.Sprintf("mapread(p%d) -> %d", i.page, out.(int))
		}
		return fmt.Sprintf("read(p%d) -> %d", i.page, out.(int))
	},
	DescribeState: func(state any) string { return fmt.Sprint(state.(int)) },
}

// Run records a history and checks it.
func Run(cfg Config) (Result, error) {
	if cfg.Clients == 0 {
		cfg.Clients = 4
	}
	if cfg.Pages == 0 {
		cfg.Pages = 4
	}
	if cfg.Ops == 0 {
		cfg.Ops = 300
	}
	var victimIno uint64
	hooks := &holefs.Hooks{AfterTruncatePages: func(ino uint64, op string) {
		if cfg.Window > 0 && ino == victimIno {
			time.Sleep(cfg.Window)
		}
	}}
	fsys, err := holefs.Open("", holefs.Options{Backend: cfg.Backend, LockMode: cfg.Mode,
		CacheBytes: 256 << 10, SizeBytes: 64 << 20, Hooks: hooks})
	if err != nil {
		return Result{}, err
	}
	defer fsys.Close()
	f, err := fsys.Create("victim")
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	if err := f.Truncate(int64(cfg.Pages) * pg); err != nil {
		return Result{}, err
	}
	fi, _ := f.Stat()
	victimIno = fi.Sys().(*holefs.Attr).Ino
	view, err := f.Mmap(0, int64(cfg.Pages)*pg, false)
	if err != nil {
		return Result{}, err
	}
	defer view.Unmap()

	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		errs    []error
		clients sync.WaitGroup
		nwg     sync.WaitGroup
		done    = make(chan struct{})
	)
	for c := 0; c < cfg.Clients; c++ {
		clients.Add(1)
		go func(c int) {
			defer clients.Done()
			r := rand.New(rand.NewPCG(cfg.Seed, uint64(c)))
			buf := make([]byte, pg)
			for i := 0; i < cfg.Ops; i++ {
				in := input{kind: opKind(r.IntN(5)), page: r.IntN(cfg.Pages), value: byte(1 + r.IntN(250))}
				off := int64(in.page) * pg
				call := now()
				var out any = 0
				var err error
				switch in.kind {
				case opWrite:
					for k := range buf {
						buf[k] = in.value
					}
					_, err = f.WriteAt(buf, off)
				case opRead:
					_, err = f.ReadAt(buf, off)
					out = uniform(buf)
				case opMapRead:
					_, err = view.ReadAt(buf, off)
					out = uniform(buf)
				case opPunch:
					err = f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, pg)
				case opDrop:
					err = f.Fadvise(off, pg, unix.FADV_DONTNEED)
				}
				ret := now()
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("client %d: %s: %w", c, Model.DescribeOperation(in, out), err))
				}
				history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}(c)
	}
	// The neighbour keeps allocating and writing freed blocks, so a stale
	// mapping reads another file's data rather than the punched file's own.
	nwg.Add(1)
	go func() {
		defer nwg.Done()
		n, err := fsys.Create("neighbour")
		if err != nil {
			return
		}
		defer n.Close()
		junk := make([]byte, pg)
		for k := range junk {
			junk[k] = 0xEE // never written by a client
		}
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			_, _ = n.WriteAt(junk, int64(i%64)*pg)
			_ = n.Sync()
			if i%64 == 63 {
				_ = n.Truncate(0)
			}
		}
	}()
	clients.Wait()
	close(done)
	nwg.Wait()
	if len(errs) > 0 {
		return Result{}, errors.Join(errs...)
	}
	res := Result{Ops: len(history)}
	verdict, info := porcupine.CheckOperationsVerbose(Model, history, 30*time.Second)
	switch verdict {
	case porcupine.Ok:
		res.Linearizable = true
	case porcupine.Unknown:
		res.Inconclusive = true
	default:
		dir := cfg.OutDir
		if dir == "" {
			dir = os.TempDir()
		}
		path := filepath.Join(dir, fmt.Sprintf("holefs-linear-%s-%s-seed%d.html", cfg.Backend, cfg.Mode, cfg.Seed))
		if err := porcupine.VisualizePath(Model, info, path); err != nil {
			return res, fmt.Errorf("writing the visualization: %w", err)
		}
		res.Visualization = path
	}
	return res, nil
}

// uniform returns the byte every byte of the page holds, or torn.
func uniform(b []byte) int {
	for _, x := range b[1:] {
		if x != b[0] {
			return torn
		}
	}
	return int(b[0])
}
