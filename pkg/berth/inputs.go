package berth

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/berthbuild/berth/pkg/plan"
)

// Module describes the Go module that holds a project's services.
type Module struct {
	Dir       string // absolute
	Path      string
	GoVersion string // from the toolchain line, else the go line
}

// FindModule walks up from dir to the nearest go.mod.
func FindModule(dir string) (*Module, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			f, err := modfile.ParseLax(filepath.Join(d, "go.mod"), b, nil)
			if err != nil {
				return nil, err
			}
			m := &Module{Dir: d}
			if f.Module != nil {
				m.Path = f.Module.Mod.Path
			}
			if f.Go != nil {
				m.GoVersion = fullGoVersion(f.Go.Version)
			}
			if f.Toolchain != nil {
				m.GoVersion = strings.TrimPrefix(f.Toolchain.Name, "go")
			}
			return m, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil, fmt.Errorf("no go.mod in %s or any parent: berth builds services of a Go module", dir)
		}
		d = parent
	}
}

// fullGoVersion turns a go line such as "1.22" into a toolchain version:
// since Go 1.21 "1.22" means the release 1.22.0.
func fullGoVersion(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) == 2 {
		if minor, err := strconv.Atoi(parts[1]); err == nil && minor >= 21 {
			return v + ".0"
		}
	}
	return v
}

// Env reads the environment; tests replace it.
type Env func(string) string

func (e Env) get(k string) string {
	if e == nil {
		return os.Getenv(k)
	}
	return e(k)
}

// gatherInputs collects the facts plan.New needs: module, git version and
// revision, SOURCE_DATE_EPOCH and Go environment.
func gatherInputs(ctx context.Context, configDir, outDir string, env Env) (plan.Inputs, *Module, error) {
	m, err := FindModule(configDir)
	if err != nil {
		return plan.Inputs{}, nil, err
	}
	rel, err := filepath.Rel(configDir, m.Dir)
	if err != nil {
		return plan.Inputs{}, nil, err
	}
	back, err := filepath.Rel(m.Dir, configDir)
	if err != nil {
		return plan.Inputs{}, nil, err
	}
	if filepath.IsAbs(outDir) {
		// Relative to the config, as a relative --out is: the side
		// outputs name it, and must not name this machine's directories.
		r, err := filepath.Rel(configDir, outDir)
		if err != nil {
			return plan.Inputs{}, nil, fmt.Errorf("--out %s: %w", outDir, err)
		}
		outDir = filepath.ToSlash(r)
	}
	in := plan.Inputs{
		ConfigInModule: filepath.ToSlash(back),
		ModuleDir:      filepath.ToSlash(rel),
		ModulePath:     m.Path,
		GoVersion:      m.GoVersion,
		GOPROXY:        env.get("GOPROXY"),
		GOSUMDB:        env.get("GOSUMDB"),
		GOPRIVATE:      env.get("GOPRIVATE"),
		OutDir:         outDir,
		ConfigDir:      configDir,
	}
	if d, err := git(ctx, m.Dir, "describe", "--tags", "--match", "v[0-9]*"); err == nil {
		in.GitVersion = strings.TrimPrefix(d, "v")
	}
	if r, err := git(ctx, m.Dir, "rev-parse", "HEAD"); err == nil {
		in.Revision = r
	}
	if s := env.get("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return in, m, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		in.SourceDateEpoch = n
	} else if t, err := git(ctx, m.Dir, "log", "-1", "--format=%ct"); err == nil {
		in.SourceDateEpoch, _ = strconv.ParseInt(t, 10, 64)
	}
	return in, m, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}
