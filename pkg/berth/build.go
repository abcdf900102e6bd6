package berth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	bkbuild "github.com/moby/buildkit/cmd/buildctl/build"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
	"github.com/berthbuild/berth/pkg/verify"
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
	// Status, if set, sees every progress update (tests and benchmarks
	// count cached and re-run steps with it).
	Status func(*client.SolveStatus)
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
	if err := selectTargets(proj, o.Services, o.Platforms); err != nil {
		return nil, err
	}
	pl := proj.Plan
	stderr := o.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	eng, err := engine.Connect(ctx, o.Engine)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	tr.mark("connect")
	if o.Load && eng.Kind != engine.Docker {
		// Fail before building, not after.
		api, _, err := dockerEngine(ctx)
		if err != nil {
			return nil, err
		}
		api.Close()
	}

	goroot, err := FetchToolchain(ctx, pl.Go.Version, eng.Platform, pl.Go.Proxy, pl.Go.SumDB)
	if err != nil {
		return nil, err
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		cacheDir = defaultCacheDir(o.Env)
	}
	if goroot, err = executableToolchain(goroot, cacheDir); err != nil {
		return nil, err
	}
	tr.mark("toolchain")
	pkgs, err := listPackages(ctx, proj.Module.Dir, cacheDir, pl)
	tr.mark("go list")
	if err != nil {
		// Still correct, only less incremental: send the whole module.
		fmt.Fprintf(stderr, "berth: %v\nberth: every service gets the whole module\n", err)
		pkgs = llbgen.Packages{}
	}
	g, err := generate(proj, eng, pkgs)
	if err != nil {
		return nil, err
	}
	secretValues, err := readSecrets(proj, o.Env)
	if err != nil {
		return nil, err
	}
	cacheTo, err := bkbuild.ParseExportCache(o.CacheTo)
	if err != nil {
		return nil, fmt.Errorf("--cache-to: %w", err)
	}
	cacheFrom, err := bkbuild.ParseImportCache(o.CacheFrom)
	if err != nil {
		return nil, fmt.Errorf("--cache-from: %w", err)
	}
	b := &builder{
		secrets: secretsprovider.FromMap(secretValues),
		cacheTo: cacheTo, cacheFrom: cacheFrom,
		o: o, proj: proj, eng: eng, graph: g, stderr: stderr, cacheDir: cacheDir,
		mounts: map[string]fsutil.FS{},
		outDir: outPath(proj.Config.Dir, pl.OutDir),
	}
	if b.mounts["context"], err = fsutil.NewFS(proj.Module.Dir); err != nil {
		return nil, err
	}
	if b.mounts["goroot"], err = fsutil.NewFS(goroot); err != nil {
		return nil, err
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

// selectTargets keeps the targets of the chosen services and platforms.
func selectTargets(p *Project, services, pfs []string) error {
	if len(services) == 0 && len(pfs) == 0 {
		return nil
	}
	want := func(list []string, v string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	known := map[string]bool{}
	for _, s := range p.Plan.Services {
		known[s] = true
	}
	for _, s := range services {
		if !known[s] {
			return fmt.Errorf("--service %s: no such service (have %s)", s, strings.Join(p.Plan.Services, ", "))
		}
	}
	var ts []plan.Target
	for _, t := range p.Plan.Targets {
		if want(services, t.Service) && want(pfs, t.Platform) {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return fmt.Errorf("no target matches --service %v --platform %v", services, pfs)
	}
	p.Plan.Targets = ts
	var names []string
	for _, s := range p.Plan.Services {
		for _, t := range ts {
			if t.Service == s {
				names = append(names, s)
				break
			}
		}
	}
	p.Plan.Services = names
	return nil
}

// toolchainExcludes leave out of the toolchain what no build reads.
var toolchainExcludes = []string{"api", "doc", "misc", "test", "**/testdata", "src/cmd", "pkg/tool/*/api", "pkg/tool/*/doc", "pkg/tool/*/fix", "pkg/tool/*/test2json", "pkg/tool/*/trace", "pkg/tool/*/pprof", "pkg/tool/*/covdata", "pkg/tool/*/preprofile"}

func generate(proj *Project, eng *engine.Engine, pkgs llbgen.Packages) (*llbgen.Graph, error) {
	pl := proj.Plan
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
		Plan:     pl,
		Builder:  eng.Platform,
		Context:  llb.Local("context", ctxOpts...),
		Packages: pkgs,
		Toolchain: llb.Local("goroot",
			llb.SharedKeyHint(fmt.Sprintf("berth-goroot:%s:%s", pl.Go.Version, platforms.Format(eng.Platform))),
			llb.ExcludePatterns(toolchainExcludes),
			llb.WithCustomName(fmt.Sprintf("[berth] Go %s toolchain", pl.Go.Version))),
		Sources:     map[string]*llb.SourceMap{},
		CACerts:     llbgen.CACerts(),
		HostNetwork: eng.Kind == engine.Docker,
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

type builder struct {
	o      BuildOptions
	proj   *Project
	eng    *engine.Engine
	graph  *llbgen.Graph
	stderr io.Writer
	// secrets serves the secret values to the module download step.
	secrets session.Attachable
	// The solve that compiles every target exports the cache; every
	// solve imports it.
	cacheTo, cacheFrom []client.CacheOptionsEntry
	mounts             map[string]fsutil.FS
	outDir             string
	cacheDir           string

	mu       sync.Mutex
	failed   map[string]*failure // vertex digest → failure, from progress
	seenLogs map[string]bool
	// runcLogAt is the size of the engine's runc log when the build
	// started: only what this build appended is shown.
	runcLogAt int64
	results   []*serviceImage

	loaded         []string
	dockerArchives []string
}

type failure struct {
	name string
	logs []byte
}

type serviceImage struct {
	service string
	ref     string
	store   string // temporary OCI store
	desc    string // base64 descriptor
}

func (b *builder) marshal(ctx context.Context, st llb.State) (*llb.Definition, error) {
	// A stable unique id for local sources gives every solve of this run,
	// and later runs, the same digests: concurrent solves share steps and
	// a warm run only walks the files again.
	opts := []llb.ConstraintsOpt{llb.LocalUniqueID("berth:" + b.proj.Module.Dir)}
	if b.o.NoCache {
		opts = append(opts, llb.IgnoreCache)
	}
	return st.Marshal(ctx, opts...)
}

func (b *builder) run(ctx context.Context) (res *BuildResult, err error) {
	if st, err := os.Stat(b.eng.RuncLog); err == nil {
		b.runcLogAt = st.Size()
	}
	mode := progressui.DisplayMode(b.o.Progress)
	if mode == "" {
		mode = progressui.AutoMode
	}
	disp, err := progressui.NewDisplay(b.stderr, mode)
	if err != nil {
		return nil, fmt.Errorf("--progress %s: %w", b.o.Progress, err)
	}
	status := make(chan *client.SolveStatus)
	dispDone := make(chan struct{})
	go func() {
		defer close(dispDone)
		_, _ = disp.UpdateFrom(context.WithoutCancel(ctx), status)
	}()
	var fwd sync.WaitGroup
	newStatus := func() chan *client.SolveStatus {
		ch := make(chan *client.SolveStatus)
		fwd.Add(1)
		go func() {
			defer fwd.Done()
			for s := range ch {
				b.record(s)
				if b.o.Status != nil {
					b.o.Status(s)
				}
				status <- s
			}
		}()
		return ch
	}

	var temps []string
	defer func() {
		for _, t := range temps {
			os.RemoveAll(t)
		}
	}()
	binTmp := ""
	eg, ectx := errgroup.WithContext(ctx)
	if b.hasBinaries() {
		binTmp, err = export.TempDir(filepath.Join(b.outDir, "bin"))
		if err != nil {
			return nil, err
		}
		temps = append(temps, binTmp)
		if b.needsBinarySolve() {
			ch := newStatus()
			eg.Go(func() error { return b.buildBinaries(ectx, binTmp, ch) })
		}
	}
	for _, s := range b.proj.Plan.Services {
		imgs := b.images(s)
		if len(imgs) == 0 {
			continue
		}
		si := &serviceImage{service: s, ref: s + ":" + plan.ImageTag(b.proj.Plan.Version)}
		if !b.eng.NoOCIExporter {
			// A store that outlives the build: blobs it has already are
			// not sent again, so a warm build exports almost nothing.
			si.store = filepath.Join(b.cacheDir, "oci", hashKey(b.outDir), s)
			if err := os.MkdirAll(si.store, 0o755); err != nil {
				return nil, err
			}
		}
		b.results = append(b.results, si)
		ch := newStatus()
		eg.Go(func() error { return b.buildImage(ectx, si, imgs, ch) })
	}
	err = eg.Wait()
	tracerFrom(ctx).mark("solve and export")
	if err == nil && binTmp != "" {
		err = b.binariesFromImages(binTmp)
		tracerFrom(ctx).mark("binaries from images")
	}
	if err == nil && (b.o.Load || b.o.DockerArchive) && !b.eng.NoOCIExporter {
		err = b.dockerImages(ctx, newStatus)
	}
	fwd.Wait()
	close(status)
	<-dispDone
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build canceled; nothing was written: %w", ctx.Err())
		}
		return nil, b.explain(err)
	}
	return b.publish(ctx, binTmp)
}

// outDir0 makes sure the output directory exists and returns it.
func (b *builder) outDir0() string {
	_ = os.MkdirAll(b.outDir, 0o755)
	return b.outDir
}

// fromImage reports whether a target's binary is taken from its image's
// layer in the persistent OCI store: content-addressed, so an unchanged
// binary costs nothing to export again. Binary-only targets, and builds
// that export a cache (whose export lives on the solve that builds every
// binary), use a local export.
func (b *builder) fromImage(t llbgen.Target) bool {
	// With a cache export or import, the build keeps the shape that
	// exports the cache, so an import meets the same solve.
	return t.Image != nil && !b.eng.NoOCIExporter && len(b.cacheTo) == 0 && len(b.cacheFrom) == 0
}

// needsBinarySolve reports whether some binary is not taken from an image.
func (b *builder) needsBinarySolve() bool {
	for _, t := range b.graph.Targets {
		if t.Plan.Outputs.Binary && !b.fromImage(t) {
			return true
		}
	}
	return false
}

func (b *builder) hasBinaries() bool {
	for _, t := range b.graph.Targets {
		if t.Plan.Outputs.Binary {
			return true
		}
	}
	return false
}

func (b *builder) images(service string) []llbgen.Target {
	var out []llbgen.Target
	for _, t := range b.graph.Targets {
		if t.Plan.Service == service && t.Image != nil {
			out = append(out, t)
		}
	}
	return out
}

// record keeps the logs of failed steps, to show them with the error.
func (b *builder) record(s *client.SolveStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed == nil {
		b.failed = map[string]*failure{}
	}
	for _, v := range s.Vertexes {
		if v.Error != "" {
			f := b.failed[v.Digest.String()]
			if f == nil {
				f = &failure{}
				b.failed[v.Digest.String()] = f
			}
			f.name = v.Name
		}
	}
	for _, l := range s.Logs {
		// A step shared by several solves reports its logs to each.
		lk := fmt.Sprintf("%s %d %d %d", l.Vertex, l.Timestamp.UnixNano(), l.Stream, len(l.Data))
		if b.seenLogs[lk] {
			continue
		}
		if b.seenLogs == nil {
			b.seenLogs = map[string]bool{}
		}
		b.seenLogs[lk] = true
		k := l.Vertex.String()
		f := b.failed[k]
		if f == nil {
			f = &failure{}
			b.failed[k] = f
		}
		f.logs = append(f.logs, l.Data...)
		if len(f.logs) > 64<<10 {
			f.logs = f.logs[len(f.logs)-64<<10:]
		}
	}
}

func (b *builder) solveOpt(exports []client.ExportEntry) client.SolveOpt {
	o := client.SolveOpt{
		Exports:      exports,
		LocalMounts:  b.mounts,
		SharedKey:    "berth:" + b.proj.Module.Dir,
		CacheImports: b.cacheFrom,
		// Never nil: BuildKit's client copies cache settings into it.
		FrontendAttrs: map[string]string{},
		Session:       []session.Attachable{b.secrets},
	}
	if b.eng.Kind == engine.Docker {
		o.AllowedEntitlements = []string{"network.host"}
	}
	return o
}

// buildBinaries exports every target's binary to dir as
// <service>/<os>_<arch>[_<variant>]/<binary>.
func (b *builder) buildBinaries(ctx context.Context, dir string, ch chan *client.SolveStatus) error {
	epoch := time.Unix(b.proj.Plan.SourceDateEpoch, 0).UTC()
	var parts []llb.State
	for _, t := range b.graph.Targets {
		if !t.Plan.Outputs.Binary || b.fromImage(t) {
			continue
		}
		dst := "/" + t.Plan.Service + "/" + strings.ReplaceAll(t.Plan.Platform, "/", "_") + "/" + t.Plan.BinaryName
		parts = append(parts, llb.Scratch().File(llb.Copy(t.Binary, "/"+t.Plan.BinaryName, dst, &llb.CopyInfo{CreateDestPath: true, CreatedTime: &epoch})))
	}
	st := llb.Merge(parts, llb.WithCustomName("[berth] binaries"))
	def, err := b.marshal(ctx, st)
	if err != nil {
		return err
	}
	opt := b.solveOpt([]client.ExportEntry{{Type: client.ExporterLocal, OutputDir: dir}})
	// This solve holds every compile step: it exports the cache.
	opt.CacheExports = b.cacheTo
	_, err = b.eng.Client.Solve(ctx, def, opt, ch)
	return err
}

// buildImage builds one service's images, a ref per platform, verifies
// each binary, and exports the multi-platform index.
func (b *builder) buildImage(ctx context.Context, si *serviceImage, imgs []llbgen.Target, ch chan *client.SolveStatus) error {
	pl := b.proj.Plan
	sde := strconv.FormatInt(pl.SourceDateEpoch, 10)
	var exports []client.ExportEntry
	if b.eng.NoOCIExporter {
		// The Docker engine's BuildKit stores images in the engine.
		exports = append(exports, client.ExportEntry{Type: "moby", Attrs: map[string]string{"name": si.ref}})
	} else {
		exports = append(exports, client.ExportEntry{
			Type:      client.ExporterOCI,
			Attrs:     map[string]string{"name": si.ref, "tar": "false", "oci-mediatypes": "true", "source-date-epoch": sde},
			OutputDir: si.store,
		})
		if b.o.OCIArchive {
			path := filepath.Join(b.outDir, "archives", fmt.Sprintf("%s_%s.oci.tar", si.service, plan.ImageTag(pl.Version)))
			exports = append(exports, client.ExportEntry{
				Type:   client.ExporterOCI,
				Attrs:  map[string]string{"name": si.ref, "oci-mediatypes": "true", "source-date-epoch": sde},
				Output: archiveWriter(path),
			})
		}
	}
	if b.o.Push != "" {
		name := strings.TrimSuffix(b.o.Push, "/") + "/" + si.ref
		attrs := map[string]string{"name": name, "push": "true", "oci-mediatypes": "true", "source-date-epoch": sde}
		if insecureRegistry(name) {
			attrs["registry.insecure"] = "true"
		}
		exports = append(exports, client.ExportEntry{Type: client.ExporterImage, Attrs: attrs})
	}
	// The service's store is shared with concurrent berth runs of the
	// same project: one export into it at a time.
	if si.store != "" {
		unlock, err := export.Lock(si.store + ".lock")
		if err != nil {
			return err
		}
		defer unlock()
	}
	resp, err := b.eng.Client.Build(ctx, b.solveOpt(exports), "berth", func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		return b.imageResult(ctx, c, imgs)
	}, ch)
	if err != nil {
		return err
	}
	si.desc = resp.ExporterResponse[exptypes.ExporterImageDescriptorKey]
	return nil
}

// imageResult solves every platform of a service concurrently, storing
// results by index so the index order never depends on timing.
func (b *builder) imageResult(ctx context.Context, c gateway.Client, imgs []llbgen.Target) (*gateway.Result, error) {
	res := gateway.NewResult()
	refs := make([]gateway.Reference, len(imgs))
	eg, ectx := errgroup.WithContext(ctx)
	for i, t := range imgs {
		eg.Go(func() error {
			def, err := b.marshal(ectx, t.Image.State)
			if err != nil {
				return err
			}
			r, err := c.Solve(ectx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
			if err != nil {
				return err
			}
			ref, err := r.SingleRef()
			if err != nil {
				return err
			}
			// A target with a binary output is verified from that export,
			// before anything is published; read the others here.
			if !t.Plan.Outputs.Binary {
				bin, err := ref.ReadFile(ectx, gateway.ReadRequest{Filename: llbgen.BinDir + "/" + t.Plan.BinaryName})
				if err != nil {
					return fmt.Errorf("read %s of %s (%s): %w", t.Plan.BinaryName, t.Plan.Service, t.Plan.Platform, err)
				}
				if err := verify.Binary(bin, want(t.Plan)); err != nil {
					return fmt.Errorf("%s (%s): binary check failed: %w", t.Plan.Service, t.Plan.Platform, err)
				}
			}
			refs[i] = ref
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	exp := exptypes.Platforms{Platforms: make([]exptypes.Platform, len(imgs))}
	for i, t := range imgs {
		id := platforms.Format(t.Image.Platform)
		cfg, err := json.Marshal(t.Image.Config)
		if err != nil {
			return nil, err
		}
		res.AddRef(id, refs[i])
		res.AddMeta(exptypes.ExporterImageConfigKey+"/"+id, cfg)
		exp.Platforms[i] = exptypes.Platform{ID: id, Platform: t.Image.Platform}
	}
	pb, err := json.Marshal(exp)
	if err != nil {
		return nil, err
	}
	res.AddMeta(exptypes.ExporterPlatformsKey, pb)
	return res, nil
}

func want(t *plan.Target) verify.Want {
	return verify.Want{GOOS: t.GOOS, GOARCH: t.GOARCH, GOARM: t.GOARM, CGO: t.CGO}
}

// insecureRegistry allows plain http to registries on this machine only.
func insecureRegistry(name string) bool {
	host, _, _ := strings.Cut(name, "/")
	h := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		h = host[:i]
	}
	return h == "localhost" || h == "127.0.0.1" || h == "[::1]"
}

// archiveWriter writes an exporter's tarball to a temporary file renamed
// into place when the exporter closes it.
func archiveWriter(path string) func(map[string]string) (io.WriteCloser, error) {
	return func(map[string]string) (io.WriteCloser, error) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
		if err != nil {
			return nil, err
		}
		return &atomicFile{File: f, dest: path}, nil
	}
}

type atomicFile struct {
	*os.File
	dest string
}

func (a *atomicFile) Close() error {
	err := a.File.Sync()
	if cerr := a.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.File.Name(), a.dest)
	}
	if err != nil {
		os.Remove(a.File.Name())
	}
	return err
}

// publish verifies the binaries and moves every result into place.
func (b *builder) publish(ctx context.Context, binTmp string) (*BuildResult, error) {
	res := &BuildResult{OutDir: b.outDir}
	if binTmp != "" {
		for _, t := range b.graph.Targets {
			if !t.Plan.Outputs.Binary {
				continue
			}
			p := filepath.Join(binTmp, t.Plan.Service, strings.ReplaceAll(t.Plan.Platform, "/", "_"), t.Plan.BinaryName)
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): binary missing from the export: %w", t.Plan.Service, t.Plan.Platform, err)
			}
			if err := verify.Binary(data, want(t.Plan)); err != nil {
				return nil, fmt.Errorf("%s (%s): binary check failed: %w", t.Plan.Service, t.Plan.Platform, err)
			}
		}
	}
	if len(b.results) > 0 && !b.eng.NoOCIExporter {
		dest := filepath.Join(b.outDir, "oci")
		if err := b.publishLayout(dest, res); err != nil {
			return nil, err
		}
		tracerFrom(ctx).mark("publish layout")
		res.Layout = dest
	}
	if binTmp != "" {
		for _, s := range b.proj.Plan.Services {
			src := filepath.Join(binTmp, s)
			if _, err := os.Stat(src); err != nil {
				continue
			}
			if err := export.ReplaceDir(src, filepath.Join(b.outDir, "bin", s)); err != nil {
				return nil, err
			}
		}
		for _, t := range b.graph.Targets {
			if t.Plan.Outputs.Binary {
				res.Binaries = append(res.Binaries, filepath.Join(b.outDir, "bin", t.Plan.Service, strings.ReplaceAll(t.Plan.Platform, "/", "_"), t.Plan.BinaryName))
			}
		}
		sort.Strings(res.Binaries)
	}
	tracerFrom(ctx).mark("publish binaries")
	side, err := SideOutputs(b.proj)
	if err != nil {
		return nil, err
	}
	gen, err := GenProject(b.proj, false)
	if err != nil {
		return nil, err
	}
	for _, f := range gen.Files {
		res.Generated = append(res.Generated, outPath(b.proj.Config.Dir, f))
	}
	if binTmp != "" {
		if res.Bundles, err = writeBundles(b.proj, b.outDir, side); err != nil {
			return nil, err
		}
		tracerFrom(ctx).mark("bundles")
	}
	if b.o.OCIArchive {
		for _, si := range b.results {
			res.Archives = append(res.Archives, filepath.Join(b.outDir, "archives", fmt.Sprintf("%s_%s.oci.tar", si.service, plan.ImageTag(b.proj.Plan.Version))))
		}
	}
	res.Loaded = append(res.Loaded, b.loaded...)
	res.Archives = append(res.Archives, b.dockerArchives...)
	if b.eng.NoOCIExporter {
		for _, si := range b.results {
			res.Loaded = append(res.Loaded, si.ref)
		}
	}
	if b.o.Push != "" {
		for _, si := range b.results {
			res.Pushed = append(res.Pushed, strings.TrimSuffix(b.o.Push, "/")+"/"+si.ref)
		}
	}
	return res, nil
}

// publishLayout merges the services' stores into one OCI layout, keeping
// the indexes of services this build did not touch, and swaps it in.
func (b *builder) publishLayout(dest string, res *BuildResult) error {
	tmp, err := export.TempDir(dest)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lay, err := export.NewLayout(tmp)
	if err != nil {
		return err
	}
	built := map[string]bool{}
	for _, si := range b.results {
		raw, err := base64.StdEncoding.DecodeString(si.desc)
		if err != nil {
			return fmt.Errorf("%s: exporter gave no image descriptor", si.service)
		}
		desc, err := export.ReadDescriptor(raw)
		if err != nil {
			return err
		}
		if err := lay.AddStore(si.store); err != nil {
			return err
		}
		lay.AddIndex(desc, si.ref)
		built[si.service] = true
		res.Images = append(res.Images, ImageResult{Service: si.service, Ref: si.ref, Digest: desc.Digest.String()})
	}
	if err := keepOthers(dest, lay, built); err != nil {
		return err
	}
	if err := lay.Finish(); err != nil {
		return err
	}
	return export.ReplaceDir(tmp, dest)
}

// keepOthers carries over, from an existing layout, the indexes of
// services not rebuilt now.
func keepOthers(dest string, lay *export.Layout, built map[string]bool) error {
	b, err := os.ReadFile(filepath.Join(dest, "index.json"))
	if err != nil {
		return nil
	}
	var idx struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil
	}
	kept := false
	for _, m := range idx.Manifests {
		d, err := export.ReadDescriptor(m)
		if err != nil {
			continue
		}
		name := d.Annotations[export.RefName]
		svc, _, _ := strings.Cut(name, ":")
		if built[svc] {
			continue
		}
		lay.AddIndex(d, name)
		kept = true
	}
	if kept {
		return lay.AddStore(dest)
	}
	return nil
}

// explain adds to a build error the failing step's output and the config
// position of the service it belongs to.
func (b *builder) explain(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("build canceled; nothing was written: %w", err)
	}
	var msg strings.Builder
	b.mu.Lock()
	keys := make([]string, 0, len(b.failed))
	for k, f := range b.failed {
		if f.name != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := b.failed[k]
		fmt.Fprintf(&msg, "\n%s failed", f.name)
		if logs := strings.TrimSpace(string(f.logs)); logs != "" {
			fmt.Fprintf(&msg, ":\n%s", indent(lastLines(logs, 30)))
		}
	}
	b.mu.Unlock()
	var d diag.List
	for _, src := range sourceErrors(err) {
		d.Add(src)
	}
	if b.eng.RuncLog != "" && strings.Contains(err.Error(), "exit code") {
		// A step that died before running shows only "exit code: 1";
		// runc says why.
		if rl, rerr := os.ReadFile(b.eng.RuncLog); rerr == nil && int64(len(rl)) > b.runcLogAt {
			rl = rl[b.runcLogAt:]
			fmt.Fprintf(&msg, "\nthe engine's runc log (%s) ends with:\n%s", b.eng.RuncLog, indent(lastLines(strings.TrimSpace(string(rl)), 5)))
		}
	}
	if left := export.SpaceLeft(b.outDir); left >= 0 && left < 1<<20 {
		// Exporters report a full disk as a broken stream ("EOF").
		fmt.Fprintf(&msg, "\nno space left on the file system of the output directory %s (%d bytes free)", b.outDir, left)
	}
	out := fmt.Errorf("build failed on %s: %w%s", b.eng.Addr, err, msg.String())
	if d.Len() > 0 {
		return &buildError{err: out, where: d.Errors()}
	}
	return out
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buildError is a build failure with the config positions it traces to.
type buildError struct {
	err   error
	where []error
}

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// Where returns the config positions of the failing services.
func (e *buildError) Where() []error { return e.where }

var _ = config.SchemaCopy

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
