package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

func TestShares(t *testing.T) {
	fn := map[string]*profile.Function{}
	loc := func(names ...string) []*profile.Location {
		var out []*profile.Location
		for _, n := range names {
			if fn[n] == nil {
				fn[n] = &profile.Function{ID: uint64(len(fn) + 1), Name: n}
			}
			out = append(out, &profile.Location{Line: []profile.Line{{Function: fn[n]}}})
		}
		return out
	}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			// A GC assist inside the layer compression counts as compression:
			// the first area (in the list's order) any frame matches.
			{Location: loc("runtime.mallocgc", "compress/flate.(*compressor).deflate", "main.main"), Value: []int64{1, 3e9}},
			{Location: loc("crypto/internal/fips140/sha256.blockSHANI", "github.com/containerd/containerd/v2/core/diff/apply.apply"), Value: []int64{1, 1e9}},
			{Location: loc("runtime.gcBgMarkWorker"), Value: []int64{1, 5e8}},
			{Location: loc("syscall.Syscall6", "main.other"), Value: []int64{1, 5e8}},
			{Location: loc("compress/gzip.(*Writer).Write"), Value: []int64{1, 1e9}},
		},
	}
	got, total := shares(p, engineAreas)
	if total != 6 {
		t.Errorf("total %.2f core-s, want 6", total)
	}
	var b strings.Builder
	for _, s := range got {
		fmt.Fprintf(&b, "%s=%g;", s.What[:min(len(s.What), 12)], s.Seconds)
	}
	// Largest first; equal CPU by name.
	want := "gzip of the =4;unpacking th=1;Go runtime (=0.5;other=0.5;"
	if b.String() != want {
		t.Errorf("shares: %s, want %s", b.String(), want)
	}
}
