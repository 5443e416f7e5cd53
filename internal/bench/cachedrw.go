package bench

import (
	"context"

	"github.com/holefs/holefs"
)

var cachedRW = Workload{
	Name: "cached-rw",
	Brief: "the seed's case: 1 reader doing 4 KiB random buffered reads and 1 buffered writer of other pages " +
		"of a fully cached file, per lock mode, on extentfs and on ext2",
	Steps: func(Config) int { return len(holefs.LockModes) * len(cachedBackends) },
	Run:   runCachedRW,
	Plots: []PlotSpec{
		{Title: "cached-rw: reader and writer throughput", Metrics: []string{"reader_ops", "writer_ops"}, YLabel: "ops/s"},
	},
}

// cachedBackends are the backends cached-rw runs in every lock mode: the
// ext4-like one and the ext2-like one, whose writes link indirect blocks.
var cachedBackends = []string{holefs.BackendExtent, holefs.BackendExt2}

// runCachedRW measures what the invalidate lock buys the seed's reader:
// in rwsem mode a buffered read takes the inode lock shared, so it waits
// for every buffered write; with the invalidate lock a cache hit takes
// nothing.
func runCachedRW(ctx context.Context, cfg Config, p Progress) ([]Result, error) {
	var configs []mixedConfig
	for _, b := range cachedBackends {
		for _, mode := range holefs.LockModes {
			configs = append(configs, mixedConfig{b, mode})
		}
	}
	rows, err := runMixedConfigs(ctx, cfg, p, "cached-rw", configs, true)
	if err != nil {
		return rows, err
	}
	rows = addRatio(rows, "cached-rw", "reader_ops", "invalidate", "rwsem", "", 0)
	rows = addRatio(rows, "cached-rw", "reader_ops", "ext2 invalidate", "ext2 rwsem", "", 0)
	rows = addRatio(rows, "cached-rw", "read_p99", "rwsem", "invalidate", "", 0)
	rows = addRatio(rows, "cached-rw", "read_p99", "ext2 rwsem", "ext2 invalidate", "", 0)
	return rows, nil
}
