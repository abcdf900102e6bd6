package berth

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/plan"
)

// GCPercent is the garbage collector setting the berth command builds
// with, and PlanGCPercent the one it loads, plans and generates the build
// graph with (see TuneGC). CUE evaluation and LLB generation allocate many
// short-lived objects: on 1,000 services × 3 platforms, collecting a
// quarter as often as Go's default made plan + LLB a tenth faster (1.12
// against 1.25 s, 7 alternated runs) for 153 MB of peak RSS against 145.
// From the solve on, what the client holds is buffers (layers, binaries,
// bundles) rather than garbage: there 400 raised a cold build's peak RSS
// from 117 to 149 MB for no gain, so the build goes back to 200.
const (
	GCPercent     = 200
	PlanGCPercent = 400
)

var gcTuned atomic.Bool

// TuneGC is for the berth command: unless GOGC is set, the process runs
// with PlanGCPercent until a build's solves start, then with GCPercent.
func TuneGC() {
	if os.Getenv("GOGC") != "" {
		return
	}
	gcTuned.Store(true)
	debug.SetGCPercent(PlanGCPercent)
}

// solveGC is called once a build's graphs are marshalled.
func solveGC() {
	if gcTuned.Load() {
		debug.SetGCPercent(GCPercent)
	}
}

// Options are shared by every operation.
type Options struct {
	// Dir holds the project's .cue files; default ".".
	Dir string
	// OutDir is where outputs go, relative to Dir unless absolute;
	// default "dist".
	OutDir string
	// Env reads environment variables; default os.Getenv.
	Env Env
}

func (o Options) dir() string {
	if o.Dir == "" {
		return "."
	}
	return o.Dir
}

// Validate loads and validates the project.
func Validate(ctx context.Context, o Options) (*config.Project, error) {
	return config.Load(o.dir())
}

// Project is a loaded project with its plan.
type Project struct {
	Config *config.Project
	Plan   *plan.Plan
	Module *Module
}

// Plan loads, validates and plans the project, and checks that every
// service's main package is a directory of the module. What it asks git
// and the module (gatherInputs: up to three git processes) does not
// depend on the config, so it runs while the config loads.
func Plan(ctx context.Context, o Options) (*Project, error) {
	dir, err := filepath.Abs(o.dir())
	if err != nil {
		return nil, err
	}
	o.Dir = dir // the config is loaded from the directory gatherInputs asks about
	type gathered struct {
		in  plan.Inputs
		m   *Module
		err error
	}
	ch := make(chan gathered, 1)
	go func() {
		var g gathered
		g.in, g.m, g.err = gatherInputs(ctx, dir, o.OutDir, o.Env)
		ch <- g
	}()
	cfg, err := Validate(ctx, o)
	g := <-ch
	if err != nil {
		return nil, err
	}
	if g.err != nil {
		return nil, g.err
	}
	return planWith(cfg, g.in, g.m)
}

// PlanConfig plans an already loaded project.
func PlanConfig(ctx context.Context, cfg *config.Project, o Options) (*Project, error) {
	in, m, err := gatherInputs(ctx, cfg.Dir, o.OutDir, o.Env)
	if err != nil {
		return nil, err
	}
	return planWith(cfg, in, m)
}

func planWith(cfg *config.Project, in plan.Inputs, m *Module) (*Project, error) {
	realMod, err := filepath.EvalSymlinks(m.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkMains(m.Dir, realMod, cfg.Services); err != nil {
		return nil, err
	}
	p, err := plan.New(cfg, in)
	if err != nil {
		return nil, err
	}
	return &Project{Config: cfg, Plan: p, Module: m}, nil
}

// checkMains runs checkMain for every service, a few at a time (it waits
// on the file system: 1,000 services took 30-150 ms one after the other),
// and reports the errors in the services' order.
func checkMains(modDir, realMod string, svcs []*config.Service) error {
	errs := make([]error, len(svcs))
	var eg errgroup.Group
	eg.SetLimit(8)
	for i, s := range svcs {
		eg.Go(func() error {
			errs[i] = checkMain(modDir, realMod, s)
			return nil
		})
	}
	_ = eg.Wait() // the errors are in errs
	var all diag.List
	all.Add(errs...)
	return all.Err()
}

// checkMain refuses a main package that is missing, holds no Go file, or
// leaves the module (at modDir, realMod once symlinks are resolved)
// through a symlink.
func checkMain(modDir, realMod string, s *config.Service) error {
	dir := filepath.Join(modDir, filepath.FromSlash(s.Main))
	at := s.FieldPos("main")
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return diag.Errorf(at, "services."+s.Name+".main", "main package %s does not exist in the module at %s", s.Main, modDir)
	}
	if real != realMod && !strings.HasPrefix(real, realMod+string(filepath.Separator)) {
		return diag.Errorf(at, "services."+s.Name+".main", "main package %s leaves the module through a symlink (to %s)", s.Main, real)
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return diag.Errorf(at, "services."+s.Name+".main", "main package %s: %v", s.Main, err)
	}
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			return nil
		}
	}
	return diag.Errorf(at, "services."+s.Name+".main", "main package %s holds no .go file", s.Main)
}
