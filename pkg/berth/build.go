package berth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	bkbuild "github.com/moby/buildkit/cmd/buildctl/build"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"

	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

// BuildOptions configure Build.
type BuildOptions struct {
	Options
	// Services and Platforms select targets; empty means all.
	Services  []string
	Platforms []string
	Engine    engine.Options
	// NoCache re-runs every step instead of using BuildKit's cache.
	NoCache bool
	// Push pushes every service's index to REPO/<service>:<version>.
	Push string
	// Load loads each image, for the engine's platform, into Docker.
	Load bool
	// OCIArchive and DockerArchive write per-service tarballs.
	OCIArchive, DockerArchive bool
	// Progress is auto, tty, plain, rawjson or quiet.
	Progress string
	// Stderr receives progress; default os.Stderr.
	Stderr io.Writer
	// CacheDir keeps berth's own caches; default $XDG_CACHE_HOME/berth.
	CacheDir string
	// CacheTo and CacheFrom are BuildKit cache exports and imports, as
	// buildctl writes them: type=registry,ref=REPO[,mode=max] or
	// type=local,dest=DIR / type=local,src=DIR.
	CacheTo, CacheFrom []string
	// Builders maps a platform to the BuildKit that builds it (--builder
	// PLATFORM=ADDR), over the config's builders block; the TLS settings
	// of Engine apply to them.
	Builders map[string]string
	// Status, if set, sees every progress update (tests and benchmarks
	// count cached and re-run steps with it).
	Status func(*client.SolveStatus)
	// BuilderStatus, if set, sees every progress update with the address
	// of the builder it comes from.
	BuilderStatus func(builder string, s *client.SolveStatus)
}

// BuildResult lists what a build published.
type BuildResult struct {
	OutDir    string
	Layout    string        // OCI layout directory, "" without images
	Images    []ImageResult // sorted by service
	Binaries  []string      // paths, sorted
	Archives  []string
	Pushed    []string
	Loaded    []string
	Generated []string // Dockerfiles, units, env files
	Bundles   []string // bare-metal tarballs
}

// ImageResult is one service's multi-platform image.
type ImageResult struct {
	Service string
	Ref     string // <service>:<version>
	Digest  string // of the index
}

// Build plans the project, builds every selected target on the engine and
// publishes the results under the output directory.
func Build(ctx context.Context, o BuildOptions) (*BuildResult, error) {
	tr := newTracer(o.Env)
	defer tr.mark("done")
	ctx = withTracer(ctx, tr)
	proj, err := Plan(ctx, o.Options)
	tr.mark("plan")
	if err != nil {
		return nil, err
	}
	// full is the whole project, for what a build of some targets must
	// not shrink: side outputs, the builders' platforms, the images of
	// services it does not build.
	full := proj
	sel, err := selectTargets(full.Plan, o.Services, o.Platforms)
	if err != nil {
		return nil, err
	}
	if sel != full.Plan {
		proj = &Project{Config: full.Config, Plan: sel, Module: full.Module}
	}
	pl := proj.Plan
	stderr := o.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	// What the flags and the config can get wrong fails here, before an
	// engine starts or anything is written.
	mode := progressui.DisplayMode(o.Progress)
	if mode == "" {
		mode = progressui.AutoMode
	}
	if !slices.Contains([]progressui.DisplayMode{progressui.AutoMode, progressui.TtyMode, progressui.PlainMode, progressui.RawJSONMode, progressui.QuietMode}, mode) {
		return nil, fmt.Errorf("--progress %s: not one of auto, tty, plain, rawjson, quiet", o.Progress)
	}
	disp, err := progressui.NewDisplay(stderr, mode)
	if err != nil {
		return nil, fmt.Errorf("--progress %s: %w", o.Progress, err)
	}
	side, err := SideOutputs(full)
	if err != nil {
		return nil, err
	}
	if len(o.CacheTo) == 0 {
		o.CacheTo = proj.Config.Cache.To
	}
	if len(o.CacheFrom) == 0 {
		o.CacheFrom = proj.Config.Cache.From
	}
	nodes, err := planNodes(o, full, pl.Targets)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, n := range nodes {
			if n.eng != nil {
				n.eng.Close()
			}
		}
	}()
	cacheTo, err := bkbuild.ParseExportCache(o.CacheTo)
	if err != nil {
		return nil, fmt.Errorf("--cache-to: %w", err)
	}
	cacheFrom, err := bkbuild.ParseImportCache(o.CacheFrom)
	if err != nil {
		return nil, fmt.Errorf("--cache-from: %w", err)
	}
	if err := (&builder{nodes: nodes, cacheTo: cacheTo, cacheFrom: cacheFrom}).checkCaches(); err != nil {
		return nil, err
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		cacheDir = defaultCacheDir(o.Env)
	}
	// go list needs no engine: it runs while the engine starts and the
	// toolchain is fetched.
	type listed struct {
		pkgs llbgen.Packages
		err  error
	}
	listCh := make(chan listed, 1) // buffered: an early return leaves no goroutine behind
	go func() {
		pkgs, err := listPackages(ctx, proj.Module.Dir, cacheDir, pl)
		listCh <- listed{pkgs, err}
	}()
	// The toolchain of this machine's platform, which the embedded engine
	// builds on, is fetched and packed while the engines start.
	var early chan goToolchain
	for _, n := range nodes {
		if n.opts.Builder == "" && early == nil {
			early = make(chan goToolchain, 1) // buffered: an early return leaves no goroutine behind
			go func() { early <- prepareToolchain(ctx, pl, hostPlatform, cacheDir, false) }()
		}
	}
	if err := connectNodes(ctx, nodes); err != nil {
		return nil, err
	}
	eng := nodes[0].eng
	tr.mark("connect")
	if o.Load && eng.Kind != engine.Docker {
		// Fail before building, not after.
		if err := checkLoad(ctx, pl); err != nil {
			return nil, err
		}
	}

	// Each builder compiles with the toolchain of its own platform.
	tools := map[string]digest.Digest{}
	goroots := map[string]string{}
	for _, n := range nodes {
		pf := platforms.Format(n.eng.Platform)
		if goroots[pf] != "" {
			continue
		}
		var tc goToolchain
		if early != nil && sameToolchain(n.eng.Platform, hostPlatform) && n.eng.Kind != engine.Docker {
			tc, early = <-early, nil
		} else {
			tc = prepareToolchain(ctx, pl, n.eng.Platform, cacheDir, n.eng.Kind == engine.Docker)
		}
		if tc.err != nil {
			return nil, tc.err
		}
		goroots[pf], tools[pf] = tc.goroot, tc.image
	}
	tstore, err := toolchainStore(toolchainImages(cacheDir))
	if err != nil {
		return nil, err
	}
	tr.mark("toolchain")
	l := <-listCh
	pkgs, err := l.pkgs, l.err
	tr.mark("go list")
	if err != nil {
		// Still correct, only less incremental: send the whole module.
		fmt.Fprintf(stderr, "berth: %v\nberth: every service gets the whole module\n", err)
		pkgs = llbgen.Packages{}
	}
	ctxFS, err := fsutil.NewFS(proj.Module.Dir)
	if err != nil {
		return nil, err
	}
	static, err := staticFiles(cacheDir)
	if err != nil {
		return nil, err
	}
	staticFS, err := fsutil.NewFS(static)
	if err != nil {
		return nil, err
	}
	g := &llbgen.Graph{}
	for _, n := range nodes {
		sub := proj.Plan
		if len(nodes) > 1 {
			sub = subPlan(pl, n.pfs)
		}
		pf := platforms.Format(n.eng.Platform)
		n.mounts = map[string]fsutil.FS{"context": ctxFS, "static": staticFS}
		var toolchain llb.State
		d := tools[pf]
		pinned := d != ""
		if pinned {
			toolchain = llb.OCILayout("berth.invalid/go-toolchain@"+d.String(),
				llb.OCIStore("", ToolchainStoreID),
				llb.Platform(n.eng.Platform),
				llb.WithCustomName(fmt.Sprintf("[berth] Go %s toolchain", pl.Go.Version)))
			n.stores = map[string]content.Store{ToolchainStoreID: tstore}
		} else {
			// The Docker engine's BuildKit has no oci-layout source: the
			// toolchain directory, sent as a local source.
			toolchain = llb.Local("goroot",
				llb.SharedKeyHint(fmt.Sprintf("berth-goroot:%s:%s", pl.Go.Version, pf)),
				llb.ExcludePatterns(toolchainExcludes),
				llb.WithCustomName(fmt.Sprintf("[berth] Go %s toolchain", pl.Go.Version)))
			if n.mounts["goroot"], err = fsutil.NewFS(goroots[pf]); err != nil {
				return nil, err
			}
		}
		// A cache shared through --cache-to/--cache-from keeps the
		// standard-library steps keyed alike on every machine: not
		// shaped by this engine's cores.
		cores := n.eng.Cores
		if len(o.CacheTo) > 0 || len(o.CacheFrom) > 0 {
			cores = 0
		}
		if n.graph, err = generate(proj, sub, n.eng, cores, toolchain, pinned, pkgs); err != nil {
			return nil, err
		}
	}
	// The whole graph, in plan order.
	for i := range pl.Targets {
		for _, n := range nodes {
			for _, t := range n.graph.Targets {
				if t.Plan.Service == pl.Targets[i].Service && t.Plan.Platform == pl.Targets[i].Platform {
					g.Targets = append(g.Targets, t)
				}
			}
		}
	}
	secretValues, err := readSecrets(proj, o.Env)
	if err != nil {
		return nil, err
	}
	b := &builder{
		secrets: secretsprovider.FromMap(secretValues),
		cacheTo: cacheTo, cacheFrom: cacheFrom,
		o: o, proj: proj, full: full, side: side, disp: disp, eng: eng, nodes: nodes, graph: g, stderr: stderr, cacheDir: cacheDir,
		outDir:       outPath(proj.Config.Dir, pl.OutDir),
		manifests:    map[string]export.Manifest{},
		layers:       map[string]export.Layer{},
		extractSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	return b.run(ctx)
}

func outPath(dir, out string) string {
	if filepath.IsAbs(out) {
		return out
	}
	return filepath.Join(dir, out)
}

func defaultCacheDir(env Env) string {
	if d := env.get("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "berth")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "berth")
	}
	return filepath.Join(os.TempDir(), "berth-cache")
}

// selectTargets returns the plan of the targets of the chosen services
// and platforms: p itself when nothing is chosen. A name that matches
// nothing is an error, not a smaller build.
func selectTargets(p *plan.Plan, services, pfs []string) (*plan.Plan, error) {
	if len(services) == 0 && len(pfs) == 0 {
		return p, nil
	}
	has := map[string][]string{} // service → its platforms
	var all []string
	for _, t := range p.Targets {
		if !slices.Contains(all, t.Platform) {
			all = append(all, t.Platform)
		}
		has[t.Service] = append(has[t.Service], t.Platform)
	}
	for _, s := range services {
		if _, ok := has[s]; !ok {
			return nil, fmt.Errorf("--service %s: no such service (have %s)", s, strings.Join(p.Services, ", "))
		}
	}
	want := make([]string, len(pfs))
	for i, pf := range pfs {
		want[i] = pf
		// os/arch[/variant], never completed from this machine's.
		if v, err := platforms.Parse(pf); err == nil && strings.Contains(pf, "/") {
			want[i] = platforms.Format(platforms.Normalize(v))
		}
		if !slices.Contains(all, want[i]) {
			return nil, fmt.Errorf("--platform %s: no service builds it (the plan has %s)", pf, strings.Join(all, ", "))
		}
	}
	for _, s := range services {
		if len(want) > 0 && !slices.ContainsFunc(has[s], func(pf string) bool { return slices.Contains(want, pf) }) {
			return nil, fmt.Errorf("--service %s: it is built for %s, not for --platform %s", s, strings.Join(has[s], ", "), strings.Join(pfs, ", "))
		}
	}
	q := *p
	q.Targets, q.Services = nil, nil
	for _, t := range p.Targets {
		if (len(services) == 0 || slices.Contains(services, t.Service)) && (len(want) == 0 || slices.Contains(want, t.Platform)) {
			q.Targets = append(q.Targets, t)
		}
	}
	for _, s := range p.Services {
		if slices.ContainsFunc(q.Targets, func(t plan.Target) bool { return t.Service == s }) {
			q.Services = append(q.Services, s)
		}
	}
	return &q, nil
}

// toolchainExcludes leave out of the toolchain what no build reads: the
// commands' sources, tests (go build never reads a _test.go file), the
// tools only go test, go vet and go tool run, gofmt, and the race
// detector's runtime (-race needs cgo, and cgo needs a builder image).
// A cold build sends and unpacks the rest once: 110 MB instead of 145.
var toolchainExcludes = []string{"api", "doc", "misc", "test", "**/testdata", "**/*_test.go", "src/cmd", "src/runtime/race/*.syso", "src/runtime/race/internal", "bin/gofmt",
	"pkg/tool/*/api", "pkg/tool/*/doc", "pkg/tool/*/fix", "pkg/tool/*/test2json", "pkg/tool/*/trace", "pkg/tool/*/pprof", "pkg/tool/*/covdata", "pkg/tool/*/preprofile", "pkg/tool/*/vet"}

func generate(proj *Project, pl *plan.Plan, eng *engine.Engine, cores int, toolchain llb.State, pinned bool, pkgs llbgen.Packages) (*llbgen.Graph, error) {
	ctxOpts := []llb.LocalOption{
		llb.SharedKeyHint("berth-context:" + proj.Module.Dir),
		llb.ExcludePatterns([]string{".git", "**/.git", filepath.ToSlash(filepath.Join(mustRel(proj.Module.Dir, proj.Config.Dir), pl.OutDir))}),
		llb.WithCustomName("[berth] module " + pl.Module.Path),
	}
	if len(pkgs.Include) > 0 {
		inc := map[string]bool{"go.mod": true, "go.sum": true}
		for _, fs := range pkgs.Include {
			for _, f := range fs {
				inc[f] = true
			}
		}
		ctxOpts = append(ctxOpts, llb.IncludePatterns(sortedKeys(inc)))
	}
	env := llbgen.Env{
		Plan:            pl,
		Builder:         eng.Platform,
		Context:         llb.Local("context", ctxOpts...),
		Packages:        pkgs,
		Toolchain:       toolchain,
		ToolchainPinned: pinned,
		Sources:         map[string]*llb.SourceMap{},
		Static: llb.Local("static",
			llb.SharedKeyHint("berth-static"),
			llb.IncludePatterns([]string{llbgen.CACertsFile}),
			llb.WithCustomName("[berth] static base files")),
		HostNetwork: eng.Kind == engine.Docker,
		Cores:       cores,
	}
	files := make([]string, 0, len(proj.Config.Sources))
	for f := range proj.Config.Sources {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		rel := diag.Pos{File: f}.Rel(proj.Config.Dir).File
		env.Sources[rel] = llb.NewSourceMap(nil, rel, "cue", proj.Config.Sources[f])
	}
	return llbgen.Generate(env)
}

func hashKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

func mustRel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return "."
	}
	return r
}

// staticFiles writes the static base's CA bundle, once, into a directory
// named by its content under the cache, and returns the directory.
func staticFiles(cacheDir string) (string, error) {
	ca := llbgen.CACerts()
	dir := filepath.Join(cacheDir, "static", hashKey(string(ca)))
	p := filepath.Join(dir, llbgen.CACertsFile)
	if b, err := os.ReadFile(p); err == nil && string(b) == string(ca) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, export.WriteFile(p, ca, 0o644)
}
