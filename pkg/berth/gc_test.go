package berth

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, gcMaxPercent},
		{1 << 20, gcMaxPercent},          // a small heap: as rarely as allowed
		{gcHeapBudget / 9, gcMaxPercent}, // 9 × is the most
		{gcHeapBudget / 8, 700},          // 8 ×
		{gcHeapBudget / 5, 400},          // 5 ×
		{gcHeapBudget / 4, 300},          // 4 ×
		{gcHeapBudget/3 + 1, GCPercent},  // just under 3 ×: the least setting
		{gcHeapBudget, GCPercent},        // as large as the budget
		{4 << 30, GCPercent},             // larger
		{1 << 62, GCPercent},             // no overflow
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}

// gogc is the collector's current setting.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The tuner follows the live heap: the most rarely while it is small,
// GCPercent once it holds more than a third of the budget, and stop
// puts back what was set before.
func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "")
	before := gogc()
	stop := TuneGC()
	defer stop()
	waitFor := func(want uint64) {
		t.Helper()
		for i := 0; i < 50 && gogc() != want; i++ {
			runtime.GC()
			runtime.Gosched()
		}
		if got := gogc(); got != want {
			t.Fatalf("GOGC %d after collections, want %d", got, want)
		}
	}
	waitFor(gcMaxPercent)
	live := make([]byte, gcHeapBudget/2) // live through the collections below
	for i := range live {
		live[i] = byte(i)
	}
	waitFor(GCPercent)
	runtime.KeepAlive(live)
	live = nil
	waitFor(gcMaxPercent)
	stop()
	if got := gogc(); got != before {
		t.Errorf("GOGC %d after stop, want %d as before", got, before)
	}
	runtime.GC()
	runtime.GC()
	if got := gogc(); got != before {
		t.Errorf("GOGC %d after stop and collections, want %d", got, before)
	}
}
