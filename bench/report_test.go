package main

import (
	"math"
	"testing"
	"time"
)

// The goals pair each run with the floor's run of the same round: a
// machine that turns fast for one round (the third here) does not make a
// slower path look faster than the floor.
func TestPairedRatio(t *testing.T) {
	s := func(secs ...float64) series {
		var out series
		for _, x := range secs {
			out = append(out, sample{Wall: time.Duration(x * float64(time.Second))})
		}
		return out
	}
	r := newResults(config{}, time.Time{}, "", "")
	r.samples["floor"] = map[caseName]series{cold: s(80, 90, 100)}
	r.samples["berth"] = map[caseName]series{cold: s(88, 94.5, 60)}
	x, rounds, ok := r.pairedRatio("berth", cold)
	if !ok || math.Abs(x-1.05) > 1e-9 || rounds != "1.10×, 1.05×, 0.60×" {
		t.Errorf("pairedRatio = %v, %q, %v; want 1.05, the rounds' ratios", x, rounds, ok)
	}
	// The ratio of medians would have said 0.98×.
	if m := r.samples["berth"][cold].median().Wall.Seconds() / r.samples["floor"][cold].median().Wall.Seconds(); m >= 1 {
		t.Fatalf("the example no longer shows the difference: ratio of medians %.2f", m)
	}
	r.samples["berth"][cold] = s(88, 94.5)
	if x, _, _ := r.pairedRatio("berth", cold); math.Abs(x-1.075) > 1e-9 {
		t.Errorf("two rounds: %v, want the mean of the two", x)
	}
	if _, _, ok := r.pairedRatio("dockerfile", cold); ok {
		t.Error("a path without runs has a ratio")
	}
}
