package bench

import "testing"

// TestRangePunch runs range-punch tiny: every configuration has its rows
// and the ratios their targets. With the range lock no fill ever waits for
// the invalidate lock — the readers' pages and the punched ones never
// overlap — which is what the range lock is for, not a timing.
func TestRangePunch(t *testing.T) {
	cfg := tinyConfig(t)
	rows := runOne(t, rangePunch, cfg)
	read := []string{"reader_ops", "read_p50", "read_p99", "read_p999"}
	by := checkRows(t, "range-punch", rows, map[string][]string{
		"no puncher": read,
		"range lock": append(read, "punch_ops"),
		"file lock":  append(read, "punch_ops"),
	})
	if r, ok := by["range lock / no puncher read_p99"]; !ok || r.Kind != Ratio || metricTarget(r, "read_p99") == nil {
		t.Errorf("no read_p99 ratio with a target: %+v", r)
	}
	if _, ok := by["file lock / no puncher read_p99"]; !ok {
		t.Error("no per-file lock ratio")
	}
	for _, c := range []string{"no puncher", "range lock"} {
		if v, ok := by[c].Get("fill_waits"); !ok || v != 0 {
			t.Errorf("%s: fills waited for the invalidate lock %v times/s, want never", c, v)
		}
	}
}
