package bench

import "testing"

// TestCachedRW: the seed's case runs on both backends in every lock mode,
// with the file fully cached (a hit ratio near 100%), and yields the
// invalidate/rwsem reader ratio for each.
func TestCachedRW(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, cachedRW, cfg)
	want := []string{"reader_ops", "writer_ops", "read_p50", "read_p99"}
	by := checkRows(t, "cached-rw", rows, map[string][]string{
		"invalidate": want, "rwsem": want, "none": want,
		"ext2 invalidate": want, "ext2 rwsem": want, "ext2 none": want})
	for _, name := range []string{"invalidate / rwsem reader_ops", "ext2 invalidate / ext2 rwsem reader_ops"} {
		if r, ok := by[name]; !ok || !(r.Metrics[0].Value > 0) {
			t.Errorf("ratio %q: %+v", name, r)
		}
	}
	for _, c := range []string{"invalidate", "ext2 invalidate"} {
		if h, _ := by[c].Get("hit_ratio"); h < 90 {
			t.Errorf("%s: hit ratio %.1f%%, want the file cached", c, h)
		}
	}
}
