package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/berthbuild/berth/pkg/berth"
)

// BenchmarkPlanLLB measures load + validate + plan + LLB generation and
// marshalling of generated projects of n services × 3 platforms, with the
// GC setting the berth command plans with, and reports the process's peak RSS.
func BenchmarkPlanLLB(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(berth.PlanGCPercent))
	for _, n := range []int{10, 100, 1000} {
		dir := filepath.Join(b.TempDir(), "p")
		if err := genScale(dir, n); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				st, err := planAndLLB(dir)
				if err != nil {
					b.Fatal(err)
				}
				if st.Targets != 3*n {
					b.Fatalf("%d targets", st.Targets)
				}
			}
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB")
			}
		})
	}
}

func TestGeneratedProjectBuilds(t *testing.T) {
	// The generated services must compile: every path builds them.
	for _, deps := range []bool{false, true} {
		t.Run(fmt.Sprintf("deps=%v", deps), func(t *testing.T) {
			dir := t.TempDir()
			p := &project{Dir: filepath.Join(dir, "m"), Deps: deps}
			if err := p.generate(len(stdGroups), filepath.Join(dir, "df"), "127.0.0.1:5000/golang@sha256:0000000000000000000000000000000000000000000000000000000000000000"); err != nil {
				t.Fatal(err)
			}
			// The floor and the Dockerfiles build with berth's flags.
			if want := []string{"-trimpath", "-gcflags=all=-dwarf=false", "-ldflags=-s -w -buildid="}; !slices.Equal(p.Flags, want) {
				t.Errorf("flags %q, want %q", p.Flags, want)
			}
			df, err := os.ReadFile(filepath.Join(dir, "df", p.Services[0], "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			if want := "go build -trimpath -gcflags=all=-dwarf=false '-ldflags=-s -w -buildid=' -o /out/" + p.Services[0] + " "; !strings.Contains(string(df), want) {
				t.Errorf("Dockerfile lacks %q:\n%s", want, df)
			}
			if err := p.change(); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("go", "vet", "./...")
			cmd.Dir = p.Dir
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go vet of the generated module: %v\n%s", err, out)
			}
		})
	}
}
