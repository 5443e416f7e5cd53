package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/holefs/holefs"
)

// removeCost is the loop that punch-scale and zone-reset share: the time
// of one block-removing operation as a function of the clean pages it
// finds cached in its range, which it must truncate (the seed's point is
// that this stays linear in the cached pages, not in the range).
type removeCost struct {
	workload string // the rows' workload name
	op       string // the remover, singular: punch, reset
	ops      string // its plural, the unit of the iterations
	perPage  bool   // also report the median over P (ns_per_page)
	note     string
	pages    int64              // the range's pages; P of them are cached, spread evenly
	rd       *holefs.File       // the buffered reader that caches the P pages (FADV_RANDOM)
	prepare  func(it int) error // rewrites the range and leaves none of it cached
	remove   func() error       // the timed removal of the whole range
	cached   func() int64       // the pages in the cache
}

// run times c.remove for each P of ps: at least 3 iterations, then more
// while cfg.Duration lasts (at most 10000), and gives a row per P with
// the median, the minimum and, over P = 0, the marginal ns per page.
func (c removeCost) run(ctx context.Context, cfg Config, p Progress, ps []int64) ([]Result, error) {
	var rows []Result
	buf := make([]byte, pageSize)
	var zero float64 // median ns of P = 0, for the marginal cost
	for _, P := range ps {
		name := "P=" + countName(P)
		p.Step(c.workload + " " + name)
		var times []float64
		var cached int64
		start := time.Now()
		for it := 0; it < 3 || (time.Since(start) < cfg.Duration && it < 10000); it++ {
			if ctx.Err() != nil {
				return rows, ctx.Err()
			}
			if err := c.prepare(it); err != nil {
				return rows, err
			}
			for i := int64(0); i < P; i++ {
				if _, err := c.rd.ReadAt(buf, i*c.pages/P*pageSize); err != nil {
					return rows, err
				}
			}
			cached = c.cached()
			t := time.Now()
			if err := c.remove(); err != nil {
				return rows, err
			}
			times = append(times, float64(time.Since(t).Nanoseconds()))
			if left := c.cached(); left != 0 {
				return rows, fmt.Errorf("%d pages still cached after the %s", left, c.op)
			}
			p.Fraction(min(float64(time.Since(start))/float64(cfg.Duration), 1))
		}
		slices.Sort(times)
		med := times[len(times)/2]
		r := row(c.workload, name)
		r.add("cached_pages", "pages", float64(cached))
		r.add("ns_per_"+c.op, "ns", med)
		r.add("min", "ns", times[0])
		if P == 0 {
			zero = med
		} else {
			if c.perPage {
				r.add("ns_per_page", "ns", med/float64(P))
			}
			r.add("marginal_ns_per_page", "ns", (med-zero)/float64(P))
		}
		r.add("iterations", c.ops, float64(len(times)))
		r.Note = c.note
		rows = append(rows, r)
	}
	return rows, nil
}
