package berth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

// goPackage is what `go list -json` says of a package.
type goPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Name       string
	GoFiles    []string
	CgoFiles   []string
	SFiles     []string
	HFiles     []string
	SysoFiles  []string
	EmbedFiles []string
	Deps       []string
}

// listPackages finds, with the host's go list, which module files each
// service's main package needs and which standard packages each platform
// uses. The answer is cached by a fingerprint of the module's files.
func listPackages(ctx context.Context, modDir, cacheDir string, pl *plan.Plan) (llbgen.Packages, error) {
	key, err := fingerprint(modDir, pl)
	if err != nil {
		return llbgen.Packages{}, err
	}
	cacheFile := filepath.Join(cacheDir, "golist", key+".json")
	if b, err := os.ReadFile(cacheFile); err == nil {
		var p llbgen.Packages
		if json.Unmarshal(b, &p) == nil {
			used(cacheFile, time.Now())
			return p, nil
		}
	}
	p, err := goList(ctx, modDir, pl)
	if err != nil {
		return p, err
	}
	if b, err := json.Marshal(p); err == nil {
		_ = export.WriteFile(cacheFile, b, 0o644)
	}
	return p, nil
}

func goList(ctx context.Context, modDir string, pl *plan.Plan) (llbgen.Packages, error) {
	out := llbgen.Packages{Include: map[string][]string{}, Std: map[string][]string{}}
	mains := map[string][]string{} // main dir (module-relative) → services
	incl := map[string]map[string]bool{}
	std := map[string]map[string]bool{}
	shared := map[string]map[string]bool{} // platform → import paths
	sharedFiles := map[string]bool{}
	platforms := map[string]*plan.Target{}
	targets := map[string]bool{}  // "<service> <platform>"
	args := map[string][]string{} // platform → the mains built for it
	listedMain := map[string]bool{}
	seenService := map[string]bool{}
	var order []string
	for i := range pl.Targets {
		t := &pl.Targets[i]
		if !seenService[t.Service] {
			seenService[t.Service] = true
			rel := path.Clean(t.Main)
			mains[rel] = append(mains[rel], t.Service)
		}
		targets[t.Service+" "+t.Platform] = true
		if platforms[t.Platform] == nil {
			platforms[t.Platform] = t
			order = append(order, t.Platform)
		}
		if k := t.Platform + "\x00" + t.Main; !listedMain[k] {
			listedMain[k] = true
			args[t.Platform] = append(args[t.Platform], t.Main)
		}
	}
	// One go list per platform, over only the mains built for it (another
	// service's main may not build there at all), side by side: each is
	// mostly one core's work.
	listed := make([]map[string]*goPackage, len(order))
	var eg errgroup.Group
	eg.SetLimit(engine.HostCores())
	for i, pf := range order {
		eg.Go(func() error {
			pkgs, err := goList1(ctx, modDir, pl, platforms[pf], args[pf])
			if err != nil {
				return fmt.Errorf("go list for %s: %w", pf, err)
			}
			listed[i] = pkgs
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return out, err
	}
	for i, pf := range order {
		pkgs := listed[i]
		if std[pf] == nil {
			std[pf] = map[string]bool{}
		}
		users := map[string]int{} // package outside std → services importing it
		for _, p := range pkgs {
			rel, err := filepath.Rel(modDir, p.Dir)
			if err != nil || p.Standard || strings.HasPrefix(rel, "..") || p.Name != "main" {
				continue
			}
			services := mains[filepath.ToSlash(rel)]
			if len(services) == 0 {
				continue
			}
			files := map[string]bool{}
			for _, dep := range append([]string{p.ImportPath}, p.Deps...) {
				d := pkgs[dep]
				if d == nil {
					continue
				}
				if !d.Standard && d.Name != "main" && dep != "C" {
					for _, s := range services {
						if targets[s+" "+pf] {
							users[dep]++
						}
					}
				}
				if d.Standard {
					if !strings.Contains(dep, "internal") && !strings.HasPrefix(dep, "vendor/") && dep != "unsafe" && dep != "C" {
						std[pf][dep] = true
					}
					continue
				}
				for _, f := range localFiles(modDir, d) {
					files[f] = true
				}
			}
			for _, s := range services {
				if incl[s] == nil {
					incl[s] = map[string]bool{}
				}
				for f := range files {
					incl[s][f] = true
				}
			}
		}
		for dep, n := range users {
			if n < 2 {
				continue
			}
			if shared[pf] == nil {
				shared[pf] = map[string]bool{}
			}
			shared[pf][dep] = true
			for _, f := range localFiles(modDir, pkgs[dep]) {
				sharedFiles[f] = true
			}
		}
	}
	for s, m := range incl {
		out.Include[s] = sortedKeys(m)
	}
	for pf, m := range std {
		out.Std[pf] = sortedKeys(m)
	}
	for pf, m := range shared {
		if out.Shared == nil {
			out.Shared = map[string][]string{}
		}
		out.Shared[pf] = sortedKeys(m)
	}
	if len(sharedFiles) > 0 {
		out.SharedFiles = sortedKeys(sharedFiles)
	}
	return out, nil
}

// goList1 runs go list over mains for the platform of t.
func goList1(ctx context.Context, modDir string, pl *plan.Plan, t *plan.Target, mains []string) (map[string]*goPackage, error) {
	cmdArgs := []string{"list", "-deps", "-json=ImportPath,Dir,Standard,Name,GoFiles,CgoFiles,SFiles,HFiles,SysoFiles,EmbedFiles,Deps"}
	if len(pl.Go.Tags) > 0 {
		cmdArgs = append(cmdArgs, "-tags="+strings.Join(pl.Go.Tags, ","))
	}
	cmdArgs = append(cmdArgs, slices.Sorted(slices.Values(mains))...)
	cmd := exec.CommandContext(ctx, "go", cmdArgs...)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOOS="+t.GOOS, "GOARCH="+t.GOARCH, "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if t.GOARM != "" {
		cmd.Env = append(cmd.Env, "GOARM="+t.GOARM)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	pkgs := map[string]*goPackage{}
	dec := json.NewDecoder(&stdout)
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			return pkgs, nil
		} else if err != nil {
			return nil, err
		}
		pkgs[p.ImportPath] = &p
	}
}

// localFiles are the include patterns of a package's files when it is
// the module's own, none when another module holds it (downloaded, not
// sent).
func localFiles(modDir string, d *goPackage) []string {
	rel, err := filepath.Rel(modDir, d.Dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil
	}
	var out []string
	for _, group := range [][]string{d.GoFiles, d.CgoFiles, d.SFiles, d.HFiles, d.SysoFiles, d.EmbedFiles} {
		for _, f := range group {
			out = append(out, escapePattern(path.Join(filepath.ToSlash(rel), f)))
		}
	}
	return out
}

// escapePattern quotes file-name characters that fsutil patterns treat
// specially.
func escapePattern(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(p)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fingerprint hashes what go list's answer depends on: the plan's mains,
// platforms and tags, and the name, size and time of every file of the
// module (outside hidden directories, testdata and other modules).
func fingerprint(modDir string, pl *plan.Plan) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "v3\x00%s\x00%v\n", pl.Go.Version, pl.Go.Tags)
	for _, t := range pl.Targets {
		fmt.Fprintf(h, "%s %s %s\n", t.Service, t.Platform, t.Main)
	}
	out := filepath.Join(modDir, pl.OutDir)
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != modDir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || p == out) {
				return filepath.SkipDir
			}
			if p != modDir {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(modDir, p)
		fmt.Fprintf(h, "%s %d %d\n", rel, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}
