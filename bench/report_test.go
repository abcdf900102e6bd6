package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
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

// The bound adds berth's own work (all the machine did but its steps) to
// the floor's CPU, spread over every core, against the floor's wall time.
func TestColdBound(t *testing.T) {
	sec := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
	b := sample{CPU: sec(120), StepsCPU: sec(108), Wall: sec(62)}
	f := sample{CPU: sec(100), Wall: sec(53), ClientCPU: sec(98)}
	got := coldBound(2, b, f)
	for _, want := range []string{"was 12.0 core-s", "left 6.0 core-s", "(100.0 + 12.0) / 2 cores = 1.06×",
		// 2 × 53 − 12 = 94 core-s for the steps: 94/98 of the floor's go build; 108/98 used.
		"2 × 53.00 − 12.0 = 94.0 core-s, 0.96× the floor's go build; they used 1.10×"} {
		if !strings.Contains(got, want) {
			t.Errorf("coldBound = %q, want it to say %q", got, want)
		}
	}
	f.ClientCPU = 0
	if got := coldBound(2, b, f); strings.Contains(got, "Turned round") {
		t.Errorf("coldBound = %q: a budget against an unknown go build", got)
	}
	if coldBound(2, sample{CPU: sec(10), StepsCPU: sec(10)}, f) != "" {
		t.Error("a bound without berth's own work")
	}
}

// The machine line names a balloon that gives freed memory back to the
// host: only device 0x0005 with feature bit 5 negotiated counts.
func TestFreePageReporting(t *testing.T) {
	sys := t.TempDir()
	dev := func(name, id, features string) {
		d := filepath.Join(sys, "bus", "virtio", "devices", name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "device"), []byte(id+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "features"), []byte(features+"\n"), 0o644)
	}
	if freePageReporting(sys) {
		t.Error("no virtio devices: reported")
	}
	dev("virtio1", "0x0002", "0000010000") // a block device with bit 5
	dev("virtio0", "0x0005", "0110000000") // a balloon: stats, deflate on OOM
	if freePageReporting(sys) {
		t.Error("a balloon without bit 5, a block device with it: reported")
	}
	dev("virtio0", "0x0005", "0110010000")
	if !freePageReporting(sys) {
		t.Error("a balloon with bit 5: not reported")
	}
}
