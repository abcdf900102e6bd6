package berth

import (
	"context"
	"fmt"
	"runtime/debug"
	"syscall"
	"testing"

	"github.com/berthbuild/berth/pkg/benchproject"
)

// genProject writes a module with n services × 3 platforms.
func genProject(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := benchproject.Write(dir, n, "1.26.8"); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// BenchmarkLoadPlan measures load + validate + plan of generated projects
// of n services × 3 platforms, with the GC setting the berth command plans with.
// It reports the process's peak RSS too (maxrss-MB).
func BenchmarkLoadPlan(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(PlanGCPercent))
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
