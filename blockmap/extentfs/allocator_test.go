package extentfs

import (
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func freeRuns(a *allocator) []run {
	var out []run
	a.free.Ascend(func(r run) bool {
		out = append(out, r)
		return true
	})
	return out
}

func TestAllocatorPolicy(t *testing.T) {
	tests := []struct {
		name     string
		freed    []run // runs to free after allocating the whole device
		reqs     []allocReq
		want     [][]run
		wantFree []run
	}{
		{
			name:     "no goal takes lowest",
			freed:    []run{{10, 5}, {2, 3}},
			reqs:     []allocReq{{-1, 4}},
			want:     [][]run{{{2, 3}, {10, 1}}},
			wantFree: []run{{11, 4}},
		},
		{
			name:     "free goal wins over lower blocks",
			freed:    []run{{0, 2}, {20, 4}},
			reqs:     []allocReq{{20, 3}},
			want:     [][]run{{{20, 3}}},
			wantFree: []run{{0, 2}, {23, 1}},
		},
		{
			name:     "goal run used up then lowest",
			freed:    []run{{0, 2}, {20, 2}},
			reqs:     []allocReq{{20, 3}},
			want:     [][]run{{{20, 2}, {0, 1}}},
			wantFree: []run{{1, 1}},
		},
		{
			name:     "goal in middle of free run splits it",
			freed:    []run{{10, 10}},
			reqs:     []allocReq{{14, 2}},
			want:     [][]run{{{14, 2}}},
			wantFree: []run{{10, 4}, {16, 4}},
		},
		{
			name:     "busy goal falls back to lowest",
			freed:    []run{{5, 1}, {30, 2}},
			reqs:     []allocReq{{29, 2}},
			want:     [][]run{{{5, 1}, {30, 1}}},
			wantFree: []run{{31, 1}},
		},
		{
			name:     "goal past device end is ignored",
			freed:    []run{{3, 1}},
			reqs:     []allocReq{{64, 1}},
			want:     [][]run{{{3, 1}}},
			wantFree: nil,
		},
		{
			name:     "requests served in order",
			freed:    []run{{1, 2}, {8, 2}},
			reqs:     []allocReq{{-1, 1}, {-1, 2}},
			want:     [][]run{{{1, 1}}, {{2, 1}, {8, 1}}},
			wantFree: []run{{9, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(64)
			if _, err := a.alloc([]allocReq{{-1, 64}}); err != nil {
				t.Fatal(err)
			}
			if err := a.release(tt.freed); err != nil {
				t.Fatal(err)
			}
			got, err := a.alloc(tt.reqs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("alloc = %v, want %v", got, tt.want)
			}
			if fr := freeRuns(a); !reflect.DeepEqual(fr, tt.wantFree) {
				t.Errorf("free runs = %v, want %v", fr, tt.wantFree)
			}
		})
	}
}

func TestAllocatorENOSPCAllOrNothing(t *testing.T) {
	a := newAllocator(10)
	if _, err := a.alloc([]allocReq{{-1, 4}}); err != nil {
		t.Fatal(err)
	}
	_, err := a.alloc([]allocReq{{-1, 3}, {-1, 4}})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if _, free := a.statfs(); free != 6 {
		t.Errorf("free = %d after failed alloc, want 6", free)
	}
	if fr := freeRuns(a); !reflect.DeepEqual(fr, []run{{4, 6}}) {
		t.Errorf("free runs = %v, want [{4 6}]", fr)
	}
}

func TestAllocatorReleaseMerges(t *testing.T) {
	a := newAllocator(16)
	if _, err := a.alloc([]allocReq{{-1, 16}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []run{{4, 2}, {8, 2}, {6, 2}, {0, 1}, {1, 3}} {
		if err := a.release([]run{r}); err != nil {
			t.Fatal(err)
		}
	}
	if fr := freeRuns(a); !reflect.DeepEqual(fr, []run{{0, 10}}) {
		t.Errorf("free runs = %v, want [{0 10}]", fr)
	}
	if _, free := a.statfs(); free != 10 {
		t.Errorf("free = %d, want 10", free)
	}
}

func TestAllocatorDoubleFree(t *testing.T) {
	tests := []struct {
		name      string
		release   []run
		wantBlock string
		wantFree  []run
	}{
		{"whole run already free", []run{{2, 2}}, "block 2 ", []run{{2, 3}, {10, 2}}},
		{"tail already free", []run{{5, 6}}, "block 10 ", []run{{2, 10}}},
		{"head already free", []run{{4, 3}}, "block 4 ", []run{{2, 5}, {10, 2}}},
		{"spans a free run", []run{{8, 5}}, "block 10 ", []run{{2, 3}, {8, 5}}},
		{"outside device", []run{{15, 3}}, "outside the device", []run{{2, 3}, {10, 2}, {15, 1}}},
		{"negative block", []run{{-1, 1}}, "outside the device", []run{{2, 3}, {10, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(16)
			if _, err := a.alloc([]allocReq{{-1, 16}}); err != nil {
				t.Fatal(err)
			}
			if err := a.release([]run{{2, 3}, {10, 2}}); err != nil {
				t.Fatal(err)
			}
			err := a.release(tt.release)
			if !errors.Is(err, syscall.EUCLEAN) {
				t.Fatalf("err = %v, want EUCLEAN", err)
			}
			if !strings.Contains(err.Error(), tt.wantBlock) {
				t.Errorf("err = %q, want it to name %q", err, tt.wantBlock)
			}
			fr := freeRuns(a)
			if !reflect.DeepEqual(fr, tt.wantFree) {
				t.Errorf("free runs = %v, want %v", fr, tt.wantFree)
			}
			var sum int64
			for _, r := range fr {
				sum += r.count
			}
			if _, free := a.statfs(); free != sum {
				t.Errorf("free count %d != sum of free runs %d", free, sum)
			}
		})
	}
}
