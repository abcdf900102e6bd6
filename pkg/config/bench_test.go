package config

import (
	"fmt"
	"strings"
	"testing"
)

// genServices returns a berth.cue of n services × 3 platforms, each with
// its own args, env, port and limits, as bench's scale project.
func genServices(n int) []byte {
	var b strings.Builder
	b.WriteString("package berth\n\nproject: \"big\"\nversion: \"1.0.0\"\n")
	b.WriteString("defaults: {\n\tplatforms: [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]\n\tlimits: {cpu: 1, memory: \"128Mi\"}\n}\n")
	b.WriteString("services: {\n")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%04d", i)
		fmt.Fprintf(&b, "\t%q: {\n\t\tmain: \"./cmd/%s\"\n\t\targs: [\"--id=%d\"]\n\t\tenv: {ID: \"%d\"}\n\t\tports: [%d]\n\t\tlimits: memory: \"256Mi\"\n\t}\n", name, name, i, i, 8000+i%1000)
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// BenchmarkLoad measures loading and validating generated projects of n
// services, a fresh Loader each time as the berth command has.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{100, 1000} {
		src := map[string][]byte{"berth.cue": genServices(n)}
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
