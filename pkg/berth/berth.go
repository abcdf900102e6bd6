package berth

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/plan"
)

// GCPercent is the garbage collector setting the berth command runs with
// (unless GOGC is set): CUE evaluation allocates many short-lived objects,
// and collecting half as often saves a fifth of the time of a large
// validation for a few tens of MB.
const GCPercent = 200

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
// service's main package is a directory of the module.
func Plan(ctx context.Context, o Options) (*Project, error) {
	cfg, err := Validate(ctx, o)
	if err != nil {
		return nil, err
	}
	return PlanConfig(ctx, cfg, o)
}

// PlanConfig plans an already loaded project.
func PlanConfig(ctx context.Context, cfg *config.Project, o Options) (*Project, error) {
	in, m, err := gatherInputs(ctx, cfg.Dir, o.OutDir, o.Env)
	if err != nil {
		return nil, err
	}
	var errs diag.List
	realMod, err := filepath.EvalSymlinks(m.Dir)
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Services {
		if err := checkMain(m.Dir, realMod, s); err != nil {
			errs.Add(err)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	p, err := plan.New(cfg, in)
	if err != nil {
		return nil, err
	}
	return &Project{Config: cfg, Plan: p, Module: m}, nil
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
