package main

// Scale: load + validate + plan, and the LLB of the whole graph, for
// generated projects of many services × 3 platforms. `berth plan` runs as
// a process of its own for its peak RSS; plan + LLB runs in this program
// re-executed with the planllb subcommand, for the same reason.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/benchproject"
	"github.com/berthbuild/berth/pkg/berth"
	"github.com/berthbuild/berth/pkg/llbgen"
)

// genScale writes a module of n trivial services × 3 platforms, each with
// its own args, env, port and limits, as pkg/berth's BenchmarkLoadPlan.
func genScale(dir string, n int) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return benchproject.Write(dir, n, goVersion)
}

// llbStats is what planAndLLB measured.
type llbStats struct {
	Targets     int
	PlanSeconds float64
	LLBSeconds  float64
	Ops         int   // operations in all marshalled definitions
	DefBytes    int64 // their size
	Images      int
}

// planProject is berth's plan of the project in dir, with
// SOURCE_DATE_EPOCH 0.
func planProject(ctx context.Context, dir string) (*berth.Project, error) {
	return berth.Plan(ctx, berth.Options{Dir: dir, Env: func(k string) string {
		if k == "SOURCE_DATE_EPOCH" {
			return "0"
		}
		return os.Getenv(k)
	}})
}

// planAndLLB does what `berth build` does before it talks to an engine,
// minus go list: load, validate, plan, generate the graph, and marshal
// the binaries' merged graph and every image, as the build's solves do.
func planAndLLB(dir string) (llbStats, error) {
	var st llbStats
	ctx := context.Background()
	start := time.Now()
	proj, err := planProject(ctx, dir)
	if err != nil {
		return st, err
	}
	st.PlanSeconds = time.Since(start).Seconds()
	pl := proj.Plan
	start = time.Now()
	// What go list would find for these trivial mains.
	pkgs := llbgen.Packages{Include: map[string][]string{}, Std: map[string][]string{}}
	for _, t := range pl.Targets {
		pkgs.Include[t.Service] = []string{strings.TrimPrefix(t.Main, "./") + "/*.go"}
		pkgs.Std[t.Platform] = []string{"errors", "internal/abi", "runtime", "sync", "unsafe"}
	}
	g, err := llbgen.Generate(llbgen.Env{
		Plan:      pl,
		Builder:   ocispecs.Platform{OS: "linux", Architecture: "amd64"},
		Context:   llb.Local("context", llb.SharedKeyHint("bench")),
		Toolchain: llb.Local("goroot", llb.SharedKeyHint("bench-goroot")),
		Packages:  pkgs,
		Sources:   map[string]*llb.SourceMap{},
		Static:    llb.Local("static", llb.SharedKeyHint("bench-static")),
	})
	if err != nil {
		return st, err
	}
	// What berth build marshals: the images, and a solve of the binaries
	// that have no image to be taken from.
	var parts []llb.State
	var images []llb.State
	for _, t := range g.Targets {
		if t.Image != nil {
			images = append(images, t.Image.State)
		} else if t.Plan.Outputs.Binary {
			parts = append(parts, llb.Scratch().File(llb.Copy(t.Binary, "/"+t.Plan.BinaryName, "/"+t.Plan.Service+"/"+strings.ReplaceAll(t.Plan.Platform, "/", "_")+"/"+t.Plan.BinaryName, &llb.CopyInfo{CreateDestPath: true})))
		}
	}
	uid := llb.LocalUniqueID("bench")
	if len(parts) > 0 {
		def, err := llb.Merge(parts).Marshal(ctx, uid)
		if err != nil {
			return st, err
		}
		st.Ops += len(def.Def)
		for _, op := range def.Def {
			st.DefBytes += int64(len(op))
		}
	}
	// As berth build does: one marshal of every image, one definition each.
	defs, err := llbgen.Definitions(ctx, images, uid)
	if err != nil {
		return st, err
	}
	for _, d := range defs {
		st.Ops += len(d.Def)
		for _, op := range d.Def {
			st.DefBytes += int64(len(op))
		}
	}
	st.Images = len(images)
	st.LLBSeconds = time.Since(start).Seconds()
	st.Targets = len(pl.Targets)
	return st, nil
}

// planLLBMain is the planllb subprocess: the GC setting the berth command
// plans with (berth.TuneGC), one run, the stats as JSON; with profile
// paths, a CPU profile and a heap profile (allocations) of that run.
func planLLBMain(dir, cpuProfile, memProfile string) error {
	debug.SetGCPercent(berth.PlanGCPercent)
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	st, err := planAndLLB(dir)
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

// profileScale runs plan + LLB once more under the profilers and returns
// the top of each profile, as go tool pprof prints it.
func profileScale(ctx context.Context, self, dir, work string) (string, error) {
	cpu, mem := filepath.Join(work, "planllb.cpu.pprof"), filepath.Join(work, "planllb.allocs.pprof")
	cmd := exec.CommandContext(ctx, self, "planllb", dir, cpu, mem)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("profiled plan + LLB: %v\n%s", err, out)
	}
	var b strings.Builder
	for _, p := range []struct {
		title, file string
		args        []string
	}{
		{"CPU, cumulative", cpu, []string{"-top", "-cum", "-nodecount=25"}},
		{"allocated bytes, cumulative", mem, []string{"-sample_index=alloc_space", "-top", "-cum", "-nodecount=25"}},
	} {
		args := append([]string{"tool", "pprof"}, p.args...)
		out, err := exec.CommandContext(ctx, "go", append(args, p.file)...).Output()
		if err != nil {
			return "", fmt.Errorf("go tool pprof %s: %v", p.file, err)
		}
		fmt.Fprintf(&b, "%s (%s):\n%s\n", p.title, filepath.Base(p.file), strings.TrimSpace(string(out)))
	}
	return b.String(), nil
}

// scaleResult is the scale section of the report.
type scaleResult struct {
	Services, Platforms int
	Plan                series // bin/berth plan
	PlanLLB             series // plan + LLB
	LLB                 []llbStats
	GoBench             []benchLine
	GoBenchErr          string
	Profile             string // go tool pprof -top of plan + LLB
}

func runScale(ctx context.Context, self, berthBin, dir string, n, runs int) (*scaleResult, error) {
	r := &scaleResult{Services: n, Platforms: 3}
	if err := genScale(dir, n); err != nil {
		return nil, err
	}
	for i := 0; i < runs; i++ {
		cmd := exec.CommandContext(ctx, berthBin, "plan", dir)
		cmd.Stdout = io.Discard
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		s, err := runMeasured(cmd, nil)
		if err != nil {
			return nil, fmt.Errorf("berth plan: %v\n%s", err, stderr.String())
		}
		r.Plan = append(r.Plan, s)

		cmd = exec.CommandContext(ctx, self, "planllb", dir)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		s, err = runMeasured(cmd, nil)
		if err != nil {
			return nil, fmt.Errorf("plan + LLB: %v\n%s", err, stderr.String())
		}
		var st llbStats
		if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
			return nil, err
		}
		r.PlanLLB = append(r.PlanLLB, s)
		r.LLB = append(r.LLB, st)
	}
	return r, nil
}

// benchLine is one result line of go test -bench.
type benchLine struct {
	Pkg     string
	Name    string
	N       int64
	Metrics map[string]float64 // unit → value: ns/op, B/op, allocs/op, maxrss-MB
	Raw     string
}

// goBench runs go test -bench and keeps its result lines.
func goBench(ctx context.Context, repo, pattern, pkg string) ([]benchLine, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", pattern, "-benchmem", pkg)
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go test -bench %s %s: %v\n%s", pattern, pkg, err, lastLines(out.String(), 30))
	}
	var lines []benchLine
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "Benchmark") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		bl := benchLine{Pkg: pkg, Name: f[0], N: n, Metrics: map[string]float64{}, Raw: l}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				bl.Metrics[f[i+1]] = v
			}
		}
		lines = append(lines, bl)
	}
	return lines, nil
}

// servicesOf reads "services=N" from a benchmark name.
func servicesOf(name string) int {
	_, after, ok := strings.Cut(name, "services=")
	if !ok {
		return 0
	}
	end := strings.IndexFunc(after, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		after = after[:end]
	}
	n, _ := strconv.Atoi(after)
	return n
}
