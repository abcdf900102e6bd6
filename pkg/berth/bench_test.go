package berth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
)

// genProject writes a module with n services × 3 platforms.
func genProject(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/big\n\ngo 1.26.8\n"), 0o644))
	var b strings.Builder
	b.WriteString("package berth\n\nproject: \"big\"\nversion: \"1.0.0\"\n")
	b.WriteString("defaults: {\n\tplatforms: [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]\n\tlimits: {cpu: 1, memory: \"128Mi\"}\n}\n")
	b.WriteString("services: {\n")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%04d", i)
		d := filepath.Join(dir, "cmd", name)
		must(os.MkdirAll(d, 0o755))
		must(os.WriteFile(filepath.Join(d, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644))
		fmt.Fprintf(&b, "\t%q: {\n\t\tmain: \"./cmd/%s\"\n\t\targs: [\"--id=%d\"]\n\t\tenv: {ID: \"%d\"}\n\t\tports: [%d]\n\t\tlimits: memory: \"256Mi\"\n\t}\n", name, name, i, i, 8000+i%1000)
	}
	b.WriteString("}\n")
	must(os.WriteFile(filepath.Join(dir, "berth.cue"), []byte(b.String()), 0o644))
	return dir
}

// BenchmarkLoadPlan measures load + validate + plan of generated projects
// of n services × 3 platforms, with the GC setting of the berth command.
// It reports the process's peak RSS too (maxrss-MB).
func BenchmarkLoadPlan(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(GCPercent))
	for _, n := range []int{10, 100, 1000} {
		dir := genProject(b, n)
		env := Env(func(string) string { return "" })
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p, err := Plan(context.Background(), Options{Dir: dir, Env: env})
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Plan.Targets) != 3*n {
					b.Fatalf("%d targets", len(p.Plan.Targets))
				}
			}
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB")
			}
		})
	}
}
