package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

var churn = Workload{
	Name: "churn",
	Brief: "N readers doing 4 KiB random reads (uniform, and Zipf s=1.1) of a file 10x the cache, under eviction: " +
		"the engine's CLOCK measured, exact LRU and CLOCK simulated on the same trace",
	Steps: func(Config) int { return len(churnDists) },
	Run:   runChurn,
	Plots: []PlotSpec{
		{Title: "churn: hit ratio (cache = 10% of the file)", Metrics: []string{"hit_ratio"}, YLabel: "%"},
	},
}

var churnDists = []string{"uniform", "zipf"}

// maxSimTrace bounds the simulated trace (and its memory).
const maxSimTrace = 50_000_000

// pageGen draws page numbers of one distribution from one stream.
type pageGen struct {
	r       *rand.Rand
	zipf    *rand.Zipf
	pages   int64
	a, b    int64 // the rank -> page permutation of zipf: hot pages are spread over the file
	uniform bool
}

func newPageGen(dist string, r *rand.Rand, pages int64) *pageGen {
	g := &pageGen{r: r, pages: pages, uniform: dist == "uniform"}
	if !g.uniform {
		g.zipf = rand.NewZipf(r, 1.1, 1, uint64(pages-1))
		a := int64(2654435761) % pages
		for a < 1 || gcd(a, pages) != 1 {
			a++
		}
		g.a, g.b = a, pages/3
	}
	return g
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (g *pageGen) next() int64 {
	if g.uniform {
		return g.r.Int64N(g.pages)
	}
	k := int64(g.zipf.Uint64())
	return (k%g.pages*g.a + g.b) % g.pages
}

func runChurn(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	cache := roundPages(cfg.CacheBytes)
	fileBytes := cfg.churnFileBytes()
	pages := fileBytes / pageSize
	e, err := newEnv(cfg, holefs.LockInvalidate, cache, fileBytes)
	if err != nil {
		return nil, err
	}
	var rows []Result
	err = func() error {
		if err := e.createFilled("churn", fileBytes, cfg.Seed); err != nil {
			return err
		}
		n := cfg.Readers
		files := make([]*holefs.File, n)
		for i := range files {
			var err error
			if files[i], err = e.fs.OpenFile("churn", os.O_RDONLY, 0); err != nil {
				return err
			}
			defer files[i].Close()
		}
		e.measure(cfg)
		for _, dist := range churnDists {
			p.Step("churn " + dist)
			if err := files[0].Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
				return err
			}
			s0, d0 := e.stats(), e.dev.stats()
			counts := make([]int64, n)
			var ferr firstErr
			tm := timed(ctx, 0, cfg.Duration, p, n, func(g int, run *run) {
				gen := newPageGen(dist, cfg.rng("churn/"+dist, g), pages)
				buf := make([]byte, pageSize)
				for !run.stopped() {
					if _, err := files[g].ReadAt(buf, gen.next()*pageSize); err != nil {
						ferr.set(err)
						return
					}
					counts[g]++
				}
			})
			if ferr.err != nil {
				return ferr.err
			}
			s1, d1 := e.stats(), e.dev.stats()
			var total int64
			for _, c := range counts {
				total += c
			}
			r := row("churn", dist+" holefs CLOCK")
			r.add("ops", "ops/s", float64(total)/tm.seconds())
			r.add("hit_ratio", "%", hitRatio(s0.Hits, s0.Misses, s1.Hits, s1.Misses))
			r.add("evictions", "pages/s", float64(s1.Evictions-s0.Evictions)/tm.seconds())
			r.add("dev_read", "µs", d1.sub(d0).meanReadUs())
			r.add("other_cpu", "cores", tm.otherCPU)
			r.Note = fmt.Sprintf("file %s, cache %s (%d pages), %d readers, cold start", fmtBytes(fileBytes), fmtBytes(cache), s1.LimitPages, n)
			rows = append(rows, r)

			// Replay the same streams, interleaved round robin, through the models.
			t := time.Now()
			trace := churnTrace(cfg, dist, pages, counts)
			capacity := int(s1.LimitPages)
			lru := simLRU(trace, int(pages), capacity)
			clock := simCLOCK(trace, int(pages), capacity, 32)
			note := fmt.Sprintf("SIMULATION, not the engine: %d accesses of the measured run's streams, cache %d pages (%.1fs)",
				len(trace), capacity, time.Since(t).Seconds())
			for _, s := range []struct {
				name string
				hits int64
			}{{"sim LRU", lru}, {"sim CLOCK", clock}} {
				rows = append(rows, Result{Workload: "churn", Config: dist + " " + s.name, Kind: Simulated,
					Metrics: []Metric{{Name: "hit_ratio", Unit: "%", Value: 100 * float64(s.hits) / float64(max(len(trace), 1))}},
					Note:    note})
			}
			rows = addRatio(rows, "churn", "hit_ratio", dist+" sim LRU", dist+" sim CLOCK", "", 0)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return nil
	}()
	if cerr := e.close(); err == nil {
		err = cerr
	}
	return rows, err
}

// churnTrace regenerates the accesses each reader made (counts[g] from
// its stream) and interleaves them round robin.
func churnTrace(cfg Config, dist string, pages int64, counts []int64) []int32 {
	var total int64
	gens := make([]*pageGen, len(counts))
	for g := range counts {
		total += counts[g]
		gens[g] = newPageGen(dist, cfg.rng("churn/"+dist, g), pages)
	}
	total = min(total, maxSimTrace)
	trace := make([]int32, 0, total)
	for i := int64(0); int64(len(trace)) < total; i++ {
		for g, gen := range gens {
			if i < counts[g] && int64(len(trace)) < total {
				trace = append(trace, int32(gen.next()))
			}
		}
	}
	return trace
}
