package berth

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig); gcTuned.Store(false) })

	t.Setenv("GOGC", "150")
	TuneGC()
	solveGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC set, the GC setting became %d; want it left alone (100)", got)
	}

	t.Setenv("GOGC", "")
	TuneGC()
	if got := debug.SetGCPercent(PlanGCPercent); got != PlanGCPercent {
		t.Fatalf("after TuneGC: GC percent %d, want %d", got, PlanGCPercent)
	}
	solveGC()
	if got := debug.SetGCPercent(GCPercent); got != GCPercent {
		t.Fatalf("once the solves start: GC percent %d, want %d", got, GCPercent)
	}
}
