package berth

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/berthbuild/berth/pkg/dockerfile"
	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/plan"
	"github.com/berthbuild/berth/pkg/systemd"
)

// GenOptions configure Gen.
type GenOptions struct {
	Options
	// Check writes nothing and reports files on disk that differ.
	Check bool
}

// GenResult lists the side outputs.
type GenResult struct {
	Files []string // written, or checked, relative to the config dir
	Stale []string // with Check: files that differ or are missing
	Diff  string   // with Check: a unified diff of the stale files
}

// SideOutputs renders every Dockerfile, .dockerignore, unit and env file
// of the project, keyed by path relative to the config directory.
func SideOutputs(p *Project) (map[string][]byte, error) {
	pl := p.Plan
	files := map[string][]byte{}
	modRel, err := filepath.Rel(p.Module.Dir, p.Config.Dir)
	if err != nil {
		return nil, err
	}
	info := dockerfile.RenderInfo{
		Project:   pl.Project,
		Version:   pl.Version,
		GoVersion: pl.Go.Version,
		ModuleDir: pl.Module.Dir,
		OutDir:    path.Join(filepath.ToSlash(modRel), pl.OutDir),
	}
	for _, s := range pl.Services {
		var linux []plan.Target
		for _, t := range pl.Targets {
			if t.Service == s && t.GOOS == "linux" {
				linux = append(linux, t)
			}
		}
		if len(linux) == 0 {
			continue
		}
		if linux[0].Outputs.Dockerfile {
			b, err := dockerfile.Render(linux, info)
			if err != nil {
				return nil, err // names the service
			}
			ign, err := dockerfile.Dockerignore(info)
			if err != nil {
				return nil, err
			}
			dir := path.Dir(linux[0].Paths.Dockerfile)
			files[linux[0].Paths.Dockerfile] = b
			// BuildKit reads <Dockerfile>.dockerignore beside the
			// Dockerfile; .dockerignore is for a context at this directory.
			files[path.Join(dir, "Dockerfile.dockerignore")] = ign
			files[path.Join(dir, ".dockerignore")] = ign
		}
		if linux[0].Outputs.Systemd {
			o := systemd.Options{Project: pl.Project, Overrides: directives(linux[0])}
			b, err := systemd.Render(linux[0], o)
			if err != nil {
				return nil, err // names the service
			}
			files[linux[0].Paths.Unit] = b
			env, err := systemd.RenderEnv(linux[0])
			if err != nil {
				return nil, fmt.Errorf("environment file of %s: %w", s, err)
			}
			if env != nil {
				files[strings.TrimSuffix(linux[0].Paths.Unit, ".service")+".env"] = env
			}
		}
	}
	return files, nil
}

func directives(t plan.Target) []systemd.Directive {
	var out []systemd.Directive
	for _, d := range t.Systemd {
		out = append(out, systemd.Directive{Section: d.Section, Name: d.Name, Value: d.Value})
	}
	return out
}

// Gen writes the side outputs, or with Check compares them with disk.
func Gen(ctx context.Context, o GenOptions) (*GenResult, error) {
	p, err := Plan(ctx, o.Options)
	if err != nil {
		return nil, err
	}
	return GenProject(p, o.Check)
}

// GenProject writes (or checks) the side outputs of a planned project.
func GenProject(p *Project, check bool) (*GenResult, error) {
	files, err := SideOutputs(p)
	if err != nil {
		return nil, err
	}
	return writeSideOutputs(p, files, check)
}

// writeSideOutputs writes (or checks) side outputs SideOutputs rendered.
func writeSideOutputs(p *Project, files map[string][]byte, check bool) (*GenResult, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	res := &GenResult{Files: names}
	var diff strings.Builder
	for _, n := range names {
		full := filepath.Join(p.Config.Dir, filepath.FromSlash(n))
		if filepath.IsAbs(n) {
			full = n
		}
		if check {
			old, err := os.ReadFile(full)
			if err == nil && bytes.Equal(old, files[n]) {
				continue
			}
			res.Stale = append(res.Stale, n)
			ud := difflib.UnifiedDiff{
				A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(files[n])),
				FromFile: "a/" + n, ToFile: "b/" + n, Context: 3,
			}
			if err != nil {
				ud.FromFile = "/dev/null"
			}
			text, _ := difflib.GetUnifiedDiffString(ud)
			diff.WriteString(text)
			continue
		}
		// Unchanged files are left as they are: a warm build writes
		// every service's Dockerfile and unit again otherwise (32 fsyncs
		// for 8 services, most of a no-op build's time after the solve).
		if _, err := export.UpdateFile(full, files[n], 0o644); err != nil {
			return nil, err
		}
	}
	res.Diff = diff.String()
	return res, nil
}
