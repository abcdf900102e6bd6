package berth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/progress/progressui"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
	"github.com/berthbuild/berth/pkg/verify"
)

// Running the build: a solve for the binaries not taken from images, a
// solve per builder and platform for the images (images.go).

type builder struct {
	o BuildOptions
	// proj holds the targets this build builds; full is the whole
	// project (the same, unless --service or --platform chose some).
	proj, full *Project
	// eng is the default builder's engine (the only one, unless
	// platforms have builders of their own); nodes are all of them.
	eng    *engine.Engine
	nodes  []*node
	graph  *llbgen.Graph
	stderr io.Writer
	// secrets serves the secret values to the module download step.
	secrets session.Attachable
	// The solve that compiles every target exports the cache; every
	// solve imports it.
	cacheTo, cacheFrom []client.CacheOptionsEntry
	outDir             string
	cacheDir           string

	mu       sync.Mutex
	failed   map[string]*failure // vertex digest → failure, from progress
	seenLogs map[string]bool
	// runcLogAt is the size of the engine's runc log when the build
	// started: only what this build appended is shown.
	runcLogAt int64
	results   []*serviceImage
	// manifests maps a target (service/platform) to its image manifest.
	manifests map[string]export.Manifest
	// layers maps a target whose binary came from its image to the
	// image's gzip layer that holds it (see export.Layer).
	layers map[string]export.Layer
	// extractSlots bounds the binaries extracted at once, across units.
	extractSlots chan struct{}
	// lastSolve is when the last solve returned.
	lastSolve time.Time

	disp progressui.Display
	// side holds the whole project's side outputs, rendered before the
	// build starts.
	side map[string][]byte
	// wrote is set once publishing has changed the output directory.
	wrote bool
	// archives are the archives staged for publishing, by name.
	archives []string
	// failedTargets are targets a check on this machine failed, for
	// their positions in the config.
	failedTargets []*plan.Target
}

type failure struct {
	name string
	logs []byte
}

type serviceImage struct {
	service string
	ref     string
	// store holds the service's index; index is its descriptor.
	store string
	index ocispecs.Descriptor
}

// solved records that a solve returned.
func (b *builder) solved() {
	b.mu.Lock()
	b.lastSolve = time.Now()
	b.mu.Unlock()
}

func (b *builder) marshal(ctx context.Context, st llb.State) (*llb.Definition, error) {
	return st.Marshal(ctx, b.marshalOpts()...)
}

func (b *builder) marshalOpts() []llb.ConstraintsOpt {
	// A stable unique id for local sources gives every solve of this run,
	// and later runs, the same digests: concurrent solves share steps and
	// a warm run only walks the files again.
	opts := []llb.ConstraintsOpt{llb.LocalUniqueID("berth:" + b.proj.Module.Dir)}
	if b.o.NoCache {
		opts = append(opts, llb.IgnoreCache)
	}
	return opts
}

func (b *builder) run(ctx context.Context) (res *BuildResult, err error) {
	if st, err := os.Stat(b.eng.RuncLog); err == nil {
		b.runcLogAt = st.Size()
	}
	status := make(chan *client.SolveStatus)
	dispDone := make(chan struct{})
	go func() {
		defer close(dispDone)
		_, _ = b.disp.UpdateFrom(context.WithoutCancel(ctx), status)
	}()
	var fwd sync.WaitGroup
	drained := false
	// drain waits for the progress of every solve, then the display.
	drain := func() {
		if !drained {
			drained = true
			fwd.Wait()
			close(status)
			<-dispDone
		}
	}
	newStatus := func(n *node) chan *client.SolveStatus {
		ch := make(chan *client.SolveStatus)
		fwd.Add(1)
		go func() {
			defer fwd.Done()
			for s := range ch {
				b.record(s)
				if b.o.Status != nil {
					b.o.Status(s)
				}
				if b.o.BuilderStatus != nil {
					b.o.BuilderStatus(n.name(), s)
				}
				status <- s
			}
		}()
		return ch
	}

	var temps []string
	solveCtx, stop := context.WithCancel(ctx)
	defer stop()
	eg, ectx := errgroup.WithContext(solveCtx)
	started := false // whether eg has goroutines to wait for
	defer func() {
		if started {
			// An early return: the solves stop, and nothing writes into
			// the temporary directories removed here.
			stop()
			_ = eg.Wait()
		}
		drain()
		for _, t := range temps {
			os.RemoveAll(t)
		}
	}()
	binTmp := ""
	// binDone is closed once a node's binaries solve returns; see
	// cacheSolve for why image solves wait for it.
	binDone := map[*node]chan struct{}{}
	if b.hasBinaries() || b.cacheSolve() {
		binTmp, err = export.TempDir(filepath.Join(b.outDir, "bin"))
		if err != nil {
			return nil, err
		}
		temps = append(temps, binTmp)
		for i, n := range b.nodes {
			if !b.needsBinarySolve(n) {
				continue
			}
			dir := binTmp
			if len(b.nodes) > 1 {
				// Each builder exports into a directory of its own.
				dir = filepath.Join(binTmp, fmt.Sprintf(".node-%d", i))
			}
			ch := newStatus(n)
			done := make(chan struct{})
			binDone[n] = done
			started = true
			eg.Go(func() error {
				defer close(done)
				defer b.solved()
				return onNode(n, b.buildBinaries(ectx, n, dir, ch))
			})
		}
	}
	for _, s := range b.proj.Plan.Services {
		if len(b.images(s)) > 0 {
			b.results = append(b.results, &serviceImage{service: s, ref: s + ":" + plan.ImageTag(b.proj.Plan.Version)})
		}
	}
	if len(b.results) > 0 && b.eng.NoOCIExporter {
		// The Docker engine's BuildKit keeps images in the engine, by
		// name: a solve per service.
		for _, si := range b.results {
			ch := newStatus(b.nodes[0])
			started = true
			eg.Go(func() error {
				defer b.solved()
				return onNode(b.nodes[0], b.buildMobyImage(ectx, si, ch))
			})
		}
	} else if len(b.results) > 0 {
		// The stores are shared with concurrent berth runs of the same
		// project and output: one run at a time exports, assembles and
		// publishes.
		units, err := b.imageUnits(ctx)
		if err != nil {
			return nil, err
		}
		for _, dir := range append([]string{b.imageStore()}, unitStores(units)...) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		used(filepath.Dir(b.imageStore()), time.Now())
		unlock, err := export.Lock(ctx, b.imageStore()+".lock")
		if err != nil {
			return nil, err
		}
		defer unlock()
		for _, u := range units {
			ch := newStatus(u.n)
			started = true
			eg.Go(func() error {
				if done, ok := binDone[u.n]; ok && b.cacheSolve() {
					select {
					case <-done:
					case <-ectx.Done():
						close(ch)
						return ectx.Err()
					}
				}
				if err := onNode(u.n, b.buildImages(ectx, u, ch)); err != nil {
					return err
				}
				b.solved()
				if binTmp == "" {
					return nil
				}
				return b.unitBinaries(ectx, binTmp, u)
			})
		}
	}
	// Every definition but a binaries solve's is marshalled: from here on
	// the client mostly holds buffers.
	solveGC()
	err = eg.Wait()
	// Binaries are extracted as each solve returns: what is left after
	// the last one is the client's own time.
	if b.lastSolve.IsZero() {
		tracerFrom(ctx).mark("solve and export")
	} else {
		tracerFrom(ctx).markAt("solve and export", b.lastSolve)
		tracerFrom(ctx).mark("binaries from images")
	}
	started = false
	// Everything is checked and staged before anything is published:
	// a failure here leaves the output directory as it was.
	if err == nil && len(b.nodes) > 1 {
		err = b.assembleBinaries(binTmp)
	}
	if err == nil {
		err = b.verifyBinaries(binTmp)
	}
	ociImages := len(b.results) > 0 && !b.eng.NoOCIExporter
	if err == nil && ociImages {
		err = b.assembleImages()
		tracerFrom(ctx).mark("assemble images")
	}
	archTmp := ""
	if err == nil && ociImages && (b.o.OCIArchive || b.o.DockerArchive) {
		if archTmp, err = export.TempDir(filepath.Join(b.outDir, "archives")); err == nil {
			temps = append(temps, archTmp)
			if b.o.OCIArchive {
				err = b.ociArchives(archTmp)
			}
			if err == nil && b.o.DockerArchive {
				err = b.dockerArchives(ctx, archTmp, newStatus)
			}
		}
	}
	published := false
	if err == nil {
		res, err = b.publish(ctx, binTmp, archTmp)
		published = err == nil
	}
	// What leaves this machine goes last, once the outputs are in place.
	if published && ociImages && b.o.Push != "" {
		res.Pushed, err = b.pushImages(ctx)
	}
	if published && err == nil && ociImages && b.o.Load {
		res.Loaded, err = b.loadImages(ctx, newStatus)
	}
	drain()
	if err != nil {
		switch {
		case published && ctx.Err() != nil:
			return nil, fmt.Errorf("canceled after the build's outputs were written to %s: %w", b.outDir, ctx.Err())
		case published:
			return nil, fmt.Errorf("%w\nberth: the build itself is done: its outputs are in %s", b.explain(err), b.outDir)
		case b.wrote && ctx.Err() != nil:
			return nil, fmt.Errorf("canceled while publishing: the outputs in %s are partly this build's: %w", b.outDir, ctx.Err())
		case b.wrote:
			return nil, fmt.Errorf("%w\nberth: the outputs in %s are partly this build's; build again", b.explain(err), b.outDir)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("build canceled; nothing was written: %w", ctx.Err())
		}
		return nil, b.explain(err)
	}
	// The build is done: a cache that cannot be trimmed only stays
	// larger.
	if terr := trimCache(b.cacheDir, time.Now()); terr != nil {
		fmt.Fprintf(b.stderr, "berth: %v\n", terr)
	}
	return res, nil
}

// fromImage reports whether a target's binary is taken from its image's
// layer in the persistent OCI store: content-addressed, so an unchanged
// binary costs nothing to export again. Binary-only targets, and builds
// that export or import a cache (see cacheSolve), use a local export.
func (b *builder) fromImage(t llbgen.Target) bool {
	return t.Image != nil && !b.eng.NoOCIExporter && !b.cacheSolve()
}

// cacheSolve reports whether the build exports or imports a cache: then
// one solve per builder holds every step of its targets, so the cache it
// exports is the whole graph, and an import meets the same graph. The
// image solves of that builder start after it, when every step is in the
// engine's own cache: concurrent requests that share steps may each skip
// loading some of an imported cache (moby/buildkit#4674), and a step the
// cache holds then runs again.
func (b *builder) cacheSolve() bool {
	return len(b.cacheTo) > 0 || len(b.cacheFrom) > 0
}

// needsBinarySolve reports whether node n has a binary not taken from an
// image, or its steps go into one solve for the cache.
func (b *builder) needsBinarySolve(n *node) bool {
	for _, t := range n.graph.Targets {
		if b.cacheSolve() || (t.Plan.Outputs.Binary && !b.fromImage(t)) {
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

func (b *builder) solveOpt(n *node, exports []client.ExportEntry) client.SolveOpt {
	o := client.SolveOpt{
		Exports:     exports,
		LocalMounts: n.mounts,
		OCIStores:   n.stores,
		SharedKey:   "berth:" + b.proj.Module.Dir,

		// Never nil: BuildKit's client copies cache settings into it.
		FrontendAttrs: map[string]string{},
		Session:       []session.Attachable{b.secrets},
	}
	if n.eng.Kind == engine.Docker {
		o.AllowedEntitlements = []string{"network.host"}
	}
	// The embedded engine is berth's own and nothing reads its build
	// history: recording it costs every build 0.1 s after the export (a
	// third of a warm no-op). Remote builders and Docker's keep theirs,
	// for their operators.
	o.Internal = n.eng.Kind == engine.Embedded
	// Cannot fail: Build checks every node's entries (checkCaches).
	o.CacheImports, _ = b.cacheImports(n)
	return o
}

// buildBinaries exports the binaries of node n's targets to dir as
// <service>/<os>_<arch>[_<variant>]/<binary>.
func (b *builder) buildBinaries(ctx context.Context, n *node, dir string, ch chan *client.SolveStatus) error {
	epoch := time.Unix(b.proj.Plan.SourceDateEpoch, 0).UTC()
	var parts []llb.State
	for _, t := range n.graph.Targets {
		if t.Plan.Outputs.Binary && (!b.fromImage(t) || b.cacheSolve()) {
			dst := "/" + t.Plan.Service + "/" + strings.ReplaceAll(t.Plan.Platform, "/", "_") + "/" + t.Plan.BinaryName
			parts = append(parts, llb.Scratch().File(llb.Copy(t.Binary, "/"+t.Plan.BinaryName, dst, &llb.CopyInfo{CreateDestPath: true, CreatedTime: &epoch})))
		}
		if t.Image != nil && b.cacheSolve() {
			// Every image's steps are part of this solve, for its cache;
			// a copy that matches no file brings them in and exports
			// nothing.
			parts = append(parts, llb.Scratch().File(llb.Copy(t.Image.State, "/", "/", &llb.CopyInfo{
				IncludePatterns: []string{".berth-nothing"},
			}), llb.WithCustomName("[berth] cache "+t.Plan.Service+" ("+t.Plan.Platform+")")))
		}
	}
	st := llb.Merge(parts, llb.WithCustomName("[berth] binaries"))
	def, err := b.marshal(ctx, st)
	if err != nil {
		return err
	}
	opt := b.solveOpt(n, []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: dir}})
	// This solve holds every compile step of the node: it exports the cache.
	if opt.CacheExports, err = b.cacheExports(n); err != nil {
		return err
	}
	_, err = n.eng.Client.Solve(ctx, def, opt, ch)
	return err
}

// buildMobyImage builds a service's images on the Docker engine's
// BuildKit, which stores them in the engine under the service's name.
func (b *builder) buildMobyImage(ctx context.Context, si *serviceImage, ch chan *client.SolveStatus) error {
	n := b.nodes[0]
	exports := []client.ExportEntry{{Type: "moby", Attrs: map[string]string{"name": si.ref}}}
	_, err := n.eng.Client.Build(ctx, b.solveOpt(n, exports), "berth", func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		imgs := b.images(si.service)
		defs, err := b.imageDefs(ctx, imgs)
		if err != nil {
			return nil, err
		}
		return b.imageResult(ctx, c, n, imgs, defs)
	}, ch)
	return err
}

func (b *builder) pushName(si *serviceImage) string {
	return strings.TrimSuffix(b.o.Push, "/") + "/" + si.ref
}

// imageResult solves every platform of a service concurrently, storing
// results by index so the index order never depends on timing.
func (b *builder) imageResult(ctx context.Context, c gateway.Client, n *node, imgs []llbgen.Target, defs []*pb.Definition) (*gateway.Result, error) {
	res := gateway.NewResult()
	refs := make([]gateway.Reference, len(imgs))
	// A gateway solve does not inherit the build's cache imports: each
	// request names them, or an imported cache is never consulted.
	from, err := b.cacheImports(n)
	if err != nil {
		return nil, err
	}
	imports := make([]gateway.CacheOptionsEntry, len(from))
	for i, e := range from {
		imports[i] = gateway.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs}
	}
	eg, ectx := errgroup.WithContext(ctx)
	// The engine runs a few steps at a time: a bounded number of requests
	// in flight keeps every one of its workers busy.
	eg.SetLimit(32)
	for i, t := range imgs {
		eg.Go(func() error {
			r, err := c.Solve(ectx, gateway.SolveRequest{Definition: defs[i], Evaluate: true, CacheImports: imports})
			if err != nil {
				return err
			}
			ref, err := r.SingleRef()
			if err != nil {
				return err
			}
			// A target with a binary output is verified from that export,
			// before anything is published; read the others here, and
			// every one the Docker engine stores as it exports.
			if !t.Plan.Outputs.Binary || n.eng.NoOCIExporter {
				bin, err := ref.ReadFile(ectx, gateway.ReadRequest{Filename: llbgen.ImagePath(t.Plan.BinaryName)})
				if err != nil {
					return fmt.Errorf("read %s of %s (%s): %w", t.Plan.BinaryName, t.Plan.Service, t.Plan.Platform, err)
				}
				if err := verify.Binary(bin, want(t.Plan)); err != nil {
					return b.targetFailed(t.Plan, fmt.Errorf("%s (%s): binary check failed: %w", t.Plan.Service, t.Plan.Platform, err))
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
		id := targetID(t)
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

// atomicOutput gives an exporter's tarball a file renamed into place when
// the exporter closes it.
func atomicOutput(path string) func(map[string]string) (io.WriteCloser, error) {
	return func(map[string]string) (io.WriteCloser, error) { return export.NewAtomicFile(path) }
}
