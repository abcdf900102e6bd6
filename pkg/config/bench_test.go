package config

import (
	"fmt"
	"testing"

	"github.com/berthbuild/berth/pkg/benchproject"
)

// BenchmarkLoad measures loading and validating generated projects of n
// services, a fresh Loader each time as the berth command has.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{100, 1000} {
		src := map[string][]byte{"berth.cue": []byte(benchproject.Config(n))}
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l, err := NewLoader()
				if err != nil {
					b.Fatal(err)
				}
				p, err := l.LoadSource(testDir, src)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Services) != n {
					b.Fatalf("%d services", len(p.Services))
				}
			}
		})
	}
}
