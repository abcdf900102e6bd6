package berth

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// examplesDir holds the examples every test here plans.
const examplesDir = "../../examples"

// planEnv is the environment golden plans are made in: a fixed build date
// and Go settings, nothing else.
func planEnv(k string) string {
	switch k {
	case "SOURCE_DATE_EPOCH":
		return "1700000000"
	case "GOPROXY":
		return "https://proxy.golang.org,direct"
	case "GOSUMDB":
		return "sum.golang.org"
	}
	return "" // GOPRIVATE and everything else
}

// exampleNames lists the directories under examples/.
func exampleNames(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) < 2 {
		t.Fatalf("%d examples in %s, want at least hello and monorepo", len(names), examplesDir)
	}
	return names
}

// planExample plans a copy of an example made outside any git repository,
// so that neither version nor revision nor date come from git.
func planExample(t *testing.T, name string) (*Project, []byte) {
	t.Helper()
	dir := copyTree(t, filepath.Join(examplesDir, name))
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	p, err := Plan(context.Background(), Options{Dir: dir, Env: planEnv})
	if err != nil {
		t.Fatalf("plan %s: %v", name, err)
	}
	b, err := plan.JSON(p.Plan)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestPlanGolden compares `berth plan --json` of each example with
// testdata/plan/<example>.json. Run `go test -run PlanGolden -update` to
// rewrite them, and read the diff.
func TestPlanGolden(t *testing.T) {
	for _, name := range exampleNames(t) {
		t.Run(name, func(t *testing.T) {
			_, got := planExample(t, name)
			path := filepath.Join("testdata", "plan", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run PlanGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plan of examples/%s differs from %s (run go test -run PlanGolden -update and read the diff):\n--- got\n%s\n--- want\n%s", name, path, got, want)
			}
		})
	}
}

// TestExamplesPlan validates and plans every example, so none can rot: each
// service has a target per platform, binaries have paths, and planning
// twice gives the same bytes.
func TestExamplesPlan(t *testing.T) {
	for _, name := range exampleNames(t) {
		t.Run(name, func(t *testing.T) {
			p, first := planExample(t, name)
			cfg := p.Config
			if len(cfg.Services) == 0 {
				t.Fatal("no services")
			}
			if got, want := len(p.Plan.Targets), cfg.Targets(); got != want || got == 0 {
				t.Errorf("%d targets, want %d (one per service and platform)", got, want)
			}
			for _, tg := range p.Plan.Targets {
				if tg.Outputs.Binary && tg.Paths.Binary == "" {
					t.Errorf("%s %s: binary output without a path", tg.Service, tg.Platform)
				}
				if tg.Source.Start.Line < 1 || tg.Source.Start.File == "" {
					t.Errorf("%s %s: no source position", tg.Service, tg.Platform)
				}
			}
			if p.Plan.Version == "" || p.Plan.Go.Version == "" || p.Plan.Module.Path == "" {
				t.Errorf("version %q, go %q, module %q", p.Plan.Version, p.Plan.Go.Version, p.Plan.Module.Path)
			}
			_, again := planExample(t, name)
			if !bytes.Equal(first, again) {
				t.Errorf("two plans of examples/%s differ", name)
			}
		})
	}
}

// An absolute --out is the same plan, and the same side outputs, as the
// relative one it names: inside the module it is kept out of the build
// context, outside it is not named at all.
func TestAbsoluteOutDir(t *testing.T) {
	dir := copyTree(t, filepath.Join(examplesDir, "hello"))
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	side := func(out string) (*Project, map[string][]byte) {
		t.Helper()
		p, err := Plan(context.Background(), Options{Dir: dir, OutDir: out, Env: planEnv})
		if err != nil {
			t.Fatal(err)
		}
		files, err := SideOutputs(p)
		if err != nil {
			t.Fatal(err)
		}
		return p, files
	}
	relP, rel := side("build/out")
	absP, abs := side(filepath.Join(dir, "build", "out"))
	if absP.Plan.OutDir != "build/out" || relP.Plan.OutDir != "build/out" {
		t.Errorf("outDir %q and %q, want build/out", absP.Plan.OutDir, relP.Plan.OutDir)
	}
	if len(abs) != len(rel) {
		t.Fatalf("%d side outputs for the absolute --out, %d for the relative one", len(abs), len(rel))
	}
	for name, b := range rel {
		if !bytes.Equal(abs[name], b) {
			t.Errorf("%s differs between the absolute and the relative --out:\n%s\n---\n%s", name, abs[name], b)
		}
	}
	ign := rel["build/out/docker/hello/Dockerfile.dockerignore"]
	if !bytes.Contains(ign, []byte("\n/build/out\n")) {
		t.Errorf("the .dockerignore does not keep the output out of the context:\n%s", ign)
	}
	outside := t.TempDir()
	_, files := side(outside)
	for name, b := range files {
		if bytes.Contains(b, []byte(outside)) {
			t.Errorf("%s names the machine's directory %s:\n%s", name, outside, b)
		}
		if strings.HasSuffix(name, "dockerignore") && bytes.Contains(b, []byte(filepath.Base(outside))) {
			t.Errorf("%s names an output outside the context:\n%s", name, b)
		}
	}
}
