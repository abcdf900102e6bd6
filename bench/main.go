// Command bench measures berth against the floor (the host's own go build
// of every target) and against the hand-written multi-stage Dockerfile a
// user would write, built with BuildKit's Dockerfile frontend on the same
// buildkitd, on a generated monorepo; then how planning scales with the
// number of services. It prints one markdown table and writes
// BENCHMARKS.md.
//
//	go run ./bench -n 8 -runs 3 -out BENCHMARKS.md
//
// Run it from berth's module root, as root (the embedded engine runs
// buildkitd with runc). It needs the network only for the Go module proxy.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/llbgen"
)

type config struct {
	n       int
	deps    bool
	runs    int
	out     string
	work    string
	scale   int
	load    int
	dfRepro bool
	only    map[string]bool
}

var platforms = []string{"linux/amd64", "linux/arm64"}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench: ")
	if self, err := os.Executable(); err == nil {
		selfExe = self
	} else {
		log.Fatal(err)
	}
	if len(os.Args) > 2 && os.Args[1] == "rusage" {
		rusageMain(os.Args[2:])
		return
	}
	// Subprocesses of the benchmark, measured on their own.
	if len(os.Args) == 3 && os.Args[1] == "dfbuild" {
		if err := dfBuildMain(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if (len(os.Args) == 3 || len(os.Args) == 5) && os.Args[1] == "planllb" {
		var cpu, mem string
		if len(os.Args) == 5 {
			cpu, mem = os.Args[3], os.Args[4]
		}
		if err := planLLBMain(os.Args[2], cpu, mem); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var c config
	var only string
	flag.IntVar(&c.n, "n", 8, "number of generated services")
	flag.BoolVar(&c.deps, "deps", false, "add real module dependencies (github.com/google/uuid, golang.org/x/text) to the generated module")
	flag.IntVar(&c.runs, "runs", 3, "runs per case; figures are medians")
	flag.StringVar(&c.out, "out", "", "write the report to this file (e.g. BENCHMARKS.md)")
	flag.StringVar(&c.work, "work", "/tmp/berth-bench", "work directory (generated project, engine state, caches); short, for the engine's socket path")
	flag.IntVar(&c.scale, "scale", 1000, "services of the scale project (× 3 platforms)")
	flag.BoolVar(&c.dfRepro, "df-repro", false, "build the Dockerfiles with SOURCE_DATE_EPOCH=0 and rewrite-timestamp=true (reproducible, slower)")
	flag.IntVar(&c.load, "load", 200, "services of the load project (× 2 platforms), built once on the warm engine; 0 skips it")
	flag.StringVar(&only, "only", "floor,berth,dockerfile,load,scale", "sections to run")
	reportFrom := flag.String("report-from", "", "render the report again from a results.json a run saved in its work directory, without measuring")
	flag.Parse()
	if *reportFrom != "" {
		if err := rerender(*reportFrom, c.out); err != nil {
			log.Fatal(err)
		}
		return
	}
	c.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		c.only[strings.TrimSpace(s)] = true
	}
	if c.runs < 1 || c.n < 1 {
		log.Fatal("-runs and -n must be at least 1")
	}
	if err := run(context.Background(), c); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c config) error {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if b, err := os.ReadFile(filepath.Join(repo, "go.mod")); err != nil || !strings.HasPrefix(string(b), "module github.com/berthbuild/berth\n") {
		return fmt.Errorf("run the benchmark from berth's module root (go run ./bench)")
	}
	if c.work, err = filepath.Abs(c.work); err != nil {
		return err
	}
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	started := time.Now()

	log.Printf("building bin/berth")
	berthBin := filepath.Join(c.work, "bin", "berth")
	if err := goBuild(repo, berthBin, "./cmd/berth"); err != nil {
		return err
	}
	bk, err := findBuildkitd(repo, c.work)
	if err != nil {
		return err
	}

	res := newResults(c, started, repo, bk)
	res.berthVersion = cmdOut(repo, "git", "describe", "--tags", "--always", "--dirty")
	res.describeHost()
	proj := &project{Dir: filepath.Join(c.work, "proj"), Deps: c.deps}
	dfDir := filepath.Join(c.work, "dockerfiles")
	stateHome := filepath.Join(c.work, "state")
	engOpts := engine.Options{StateDir: filepath.Join(stateHome, "berth"), Buildkitd: bk}
	if _, err := engine.EnginePaths(engOpts); err != nil {
		return fmt.Errorf("-work %s: %w", c.work, err)
	}
	discarded, err := newTrash(filepath.Join(c.work, "trash"))
	if err != nil {
		return err
	}
	defer func() {
		// The engine was the benchmark's: stop it and free its disk.
		if err := resetEngine(context.Background(), engOpts, discarded); err != nil {
			log.Printf("cleanup: %v", err)
		}
		if err := discarded.empty(); err != nil {
			log.Printf("cleanup: %v", err)
		}
	}()

	builderRef := "scratch-builder-unused@sha256:" + strings.Repeat("0", 64)
	if c.only["dockerfile"] {
		host, stop := startRegistry()
		defer stop()
		log.Printf("assembling the Go builder image and pushing it to %s", host)
		if builderRef, err = pushBuilder(ctx, filepath.Join(c.work, "builder"), host); err != nil {
			return err
		}
		res.builderRef = builderRef
	}
	log.Printf("generating %d services in %s", c.n, proj.Dir)
	if err := proj.generate(c.n, dfDir, builderRef); err != nil {
		return err
	}
	res.proj = proj

	fl := &floor{proj: proj, dir: filepath.Join(c.work, "floor"), platform: platforms, trash: discarded}
	br := &berthRunner{bin: berthBin, buildkitd: bk, stateHome: stateHome, cacheHome: filepath.Join(c.work, "cache"), proj: proj, trash: discarded}
	dfOut := filepath.Join(c.work, "df-out")
	dr := &dfRunner{self: self, args: dfArgs{
		StateDir: engOpts.StateDir, Buildkitd: bk, Context: proj.Dir, Dockerfiles: dfDir,
		Services: proj.Services, Platforms: platforms, Out: dfOut, Repro: c.dfRepro,
	}}
	all := targetsOf(proj.Services, platforms)
	if c.only["berth"] {
		log.Printf("packing the toolchain image once (a one-service build)")
		if err := br.prime(ctx, filepath.Join(c.work, "prime")); err != nil {
			return err
		}
	}

	for r := 0; r < c.runs; r++ {
		if c.only["floor"] {
			if err := fl.reset(); err != nil {
				return err
			}
			for _, cs := range cases {
				if cs == changed {
					if err := proj.change(); err != nil {
						return err
					}
				}
				s, err := fl.build()
				if err != nil {
					return err
				}
				log.Printf("run %d floor %-8s %6.2fs", r+1, cs, s.Wall.Seconds())
				res.add("floor", cs, s)
			}
		}
		if c.only["berth"] {
			if err := resetEngine(ctx, engOpts, discarded); err != nil {
				return err
			}
			if err := br.resetCache(); err != nil {
				return err
			}
			if err := discarded.discard(filepath.Join(proj.Dir, "dist")); err != nil {
				return err
			}
			for _, cs := range cases {
				want := all
				switch cs {
				case warm:
					want = nil
				case changed:
					if err := proj.change(); err != nil {
						return err
					}
					want = targetsOf([]string{proj.changed()}, platforms)
				}
				s, run, err := br.build(ctx)
				if err != nil {
					return err
				}
				if p, err := engine.EnginePaths(engOpts); err == nil && res.engineConfig == "" {
					if b, err := os.ReadFile(filepath.Join(p.Dir, "buildkitd.toml")); err == nil {
						res.engineConfig = string(b)
					}
				}
				s.Note = checkRecompiled(run.Recompiled, want)
				log.Printf("run %d berth %-8s %6.2fs, %d go builds ran %s", r+1, cs, s.Wall.Seconds(), s.Rebuilt, s.Note)
				res.add("berth", cs, s)
				res.berthRuns[cs] = append(res.berthRuns[cs], run)
			}
		}
		if c.only["dockerfile"] {
			if err := resetEngine(ctx, engOpts, discarded); err != nil {
				return err
			}
			if err := discarded.discard(dfOut); err != nil {
				return err
			}
			for _, cs := range cases {
				if cs == changed {
					if err := proj.change(); err != nil {
						return err
					}
				}
				s, rep, err := dr.build(ctx)
				if err != nil {
					return err
				}
				log.Printf("run %d dockerfile %-8s %6.2fs, %d go builds ran", r+1, cs, s.Wall.Seconds(), s.Rebuilt)
				res.add("dockerfile", cs, s)
				res.dfRuns[cs] = append(res.dfRuns[cs], rep)
			}
		}
		// Partial results survive an interrupted benchmark.
		res.proj = proj
		if err := res.save(filepath.Join(c.work, "results.json")); err != nil {
			log.Printf("save results: %v", err)
		}
	}

	if c.only["berth"] && c.only["dockerfile"] {
		// A service the last change did not touch: both paths built it
		// from the same source.
		svc := proj.Services[0]
		bi, err := os.ReadFile(filepath.Join(proj.Dir, "dist", "oci", "index.json"))
		if err != nil {
			return err
		}
		res.imgService = svc
		if res.berthImage, err = inspectImage(bi, layoutBlobs(filepath.Join(proj.Dir, "dist", "oci")), svc+":"+version, "linux/amd64", llbgen.ImagePath(svc)); err != nil {
			return fmt.Errorf("berth's image of %s: %w", svc, err)
		}
		di, get, err := tarBlobs(filepath.Join(dfOut, svc+".oci.tar"))
		if err != nil {
			return err
		}
		if res.dfImage, err = inspectImage(di, get, "", "linux/amd64", "/"+svc); err != nil {
			return fmt.Errorf("the Dockerfile's image of %s: %w", svc, err)
		}
	}
	if c.only["berth"] {
		// As long as the slowest cold run, and more: a profile that ends
		// before the build misses its export.
		var longest time.Duration
		for _, s := range res.samples["berth"][cold] {
			longest = max(longest, s.Wall)
		}
		log.Printf("profiling one more cold berth build (engine and client CPU)")
		if res.coldProf, err = profileCold(ctx, br, c.work, longest*3/2+10*time.Second); err != nil {
			log.Printf("cold profile: %v", err)
		}
	}
	if c.only["load"] && c.load > 0 {
		log.Printf("load: one berth build of %d services × %d platforms", c.load, len(platforms))
		res.load = runLoad(ctx, br, filepath.Join(c.work, "load"), c.load)
	}
	if err := resetEngine(ctx, engOpts, discarded); err != nil {
		log.Printf("stop the engine: %v", err)
	}

	if c.only["scale"] {
		log.Printf("scale: berth plan and plan + LLB of %d services × 3 platforms", c.scale)
		if res.scale, err = runScale(ctx, self, berthBin, filepath.Join(c.work, "scale"), c.scale, c.runs); err != nil {
			return err
		}
		if prof, err := profileScale(ctx, self, filepath.Join(c.work, "scale"), c.work); err != nil {
			log.Printf("scale: profile: %v", err)
		} else {
			res.scale.Profile = prof
		}
		log.Printf("scale: go test -bench LoadPlan ./pkg/berth, -bench PlanLLB ./bench")
		for _, b := range [][2]string{{"LoadPlan", "./pkg/berth"}, {"PlanLLB", "./bench"}} {
			lines, err := goBench(ctx, repo, b[0], b[1])
			if err != nil {
				res.scale.GoBenchErr += err.Error() + "\n"
				continue
			}
			res.scale.GoBench = append(res.scale.GoBench, lines...)
		}
	}

	res.finished = time.Now()
	if err := res.save(filepath.Join(c.work, "results.json")); err != nil {
		log.Printf("save results: %v", err)
	}
	return output(res, c.out)
}

func rerender(from, out string) error {
	res, err := loadResults(from)
	if err != nil {
		return err
	}
	return output(res, out)
}

// output prints the table and writes the report.
func output(res *results, out string) error {
	table := res.table()
	fmt.Println(table)
	if out != "" {
		report, err := res.report(table)
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			return err
		}
		log.Printf("wrote %s", out)
	}
	return nil
}

func goBuild(repo, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// findBuildkitd uses the daemon `make build` builds, else builds it at
// the version pinned in go.mod.
func findBuildkitd(repo, work string) (string, error) {
	for _, p := range []string{os.Getenv("BERTH_BUILDKITD"), filepath.Join(repo, "bin", "buildkitd"), filepath.Join(work, "bin", "buildkitd")} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	out := filepath.Join(work, "bin", "buildkitd")
	log.Printf("building buildkitd (a few minutes)")
	return out, goBuild(repo, out, "github.com/moby/buildkit/cmd/buildkitd")
}
