package fsx

import "math/rand/v2"

// weightedOp is one kind of operation of a run, picked in proportion to
// its weight.
type weightedOp struct {
	weight int
	fn     func() error
}

// runOps is the loop both testers share: n operations picked from ops by
// weight with r, *op numbering each (the logs and failures name it), and
// check after every every-th one so that a divergence is caught near the
// operation that caused it rather than only at the end.
func runOps(r *rand.Rand, ops []weightedOp, n int, op *int, every int, check func() error) error {
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for *op = 0; *op < n; *op++ {
		pick := r.IntN(total)
		for _, o := range ops {
			if pick -= o.weight; pick < 0 {
				if err := o.fn(); err != nil {
					return err
				}
				break
			}
		}
		if *op%every == every-1 {
			if err := check(); err != nil {
				return err
			}
		}
	}
	return nil
}
