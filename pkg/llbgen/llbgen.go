package llbgen

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/plan"
)

// Paths inside build steps.
const (
	GOROOT     = "/usr/local/go"
	SrcDir     = "/src"
	ModCache   = "/go/pkg/mod"
	BuildCache = "/root/.cache/go-build"
	OutDir     = "/out"
	// ImagePATH is the PATH of every image berth builds.
	ImagePATH = "/usr/local/bin:/usr/bin:/bin"
)

// CacheID names the Go build cache mount shared by all berth builds.
const CacheID = "berth-go-build"

// Packages says which files of the module each service's main package
// needs, so a change elsewhere does not rebuild it.
type Packages struct {
	// Include maps a service to include patterns relative to the module
	// root (go.mod and go.sum are always included). A service that is
	// missing gets the whole module.
	Include map[string][]string
	// Std maps a platform (os/arch[/variant]) to the standard library
	// packages the project's services import on it.
	Std map[string][]string
	// Shared maps a platform to the packages outside the standard
	// library, of the module or of its dependencies, that two or more
	// services import on it. A step of their own compiles them once,
	// before the services' steps fan out; otherwise every service step
	// that starts before the first one has put them in the build cache
	// compiles them again, side by side.
	Shared map[string][]string
	// SharedFiles are the module's files the shared packages are built
	// from, as include patterns (go.mod and go.sum are always included).
	SharedFiles []string
}

// Env holds the inputs of generation that do not come from the plan.
type Env struct {
	Plan *plan.Plan
	// Builder is the platform compile steps run on; Toolchain must be
	// the Go toolchain for it.
	Builder   ocispecs.Platform
	Context   llb.State // the module root
	Toolchain llb.State // GOROOT contents at the root of the state
	// ToolchainPinned says Toolchain is an image by digest: its digest
	// names its content, so steps that mount it skip BuildKit's content
	// hash of its 110 MB (which a cold build waits for before the first
	// compile). A local toolchain (the Docker engine's) keeps it: a local
	// source's cache key names the session, not the files.
	ToolchainPinned bool
	// Cores are the engine's CPU cores, 0 when not known. Known, they
	// shape the standard-library steps (see stdBuild): as many run at once
	// as there are cores at most, each with its share of them.
	Cores    int
	Packages Packages
	// Sources maps a config file name, as written in plan targets'
	// Source, to its source map, so failing steps point at the config.
	Sources map[string]*llb.SourceMap
	// Static holds the static base's CA bundle at /ca-certificates.crt
	// (see CACerts): a local source, so the 200 KB bundle is sent to the
	// engine once instead of inlined in every target's definition.
	Static llb.State
	// HostNetwork runs the module download on the host's network, for
	// engines without a bridge (the Docker engine's BuildKit, started
	// with --bridge=none). It needs the network.host entitlement.
	HostNetwork bool
}

// Graph is the project's build graph.
type Graph struct {
	Targets []Target // in plan order
}

// Target is the graph of one plan target.
type Target struct {
	Plan *plan.Target
	// Binary holds only /<binary name>.
	Binary llb.State
	// Image is nil when the target has no image output.
	Image *Image
}

// Image is an image for one platform.
type Image struct {
	State    llb.State
	Config   ocispecs.Image
	Platform ocispecs.Platform
}

// Generate builds the whole project graph.
func Generate(env Env) (*Graph, error) {
	p := env.Plan
	epoch := time.Unix(p.SourceDateEpoch, 0).UTC()
	builder := llb.Platform(env.Builder)
	mods := modDownload(env, builder)
	std := map[string]llb.State{}
	// One static base per user: the same state for every target, so it is
	// marshaled once, however many targets use it.
	bases := map[[2]int]llb.State{}
	staticBase := func(t *plan.Target) llb.State {
		k := [2]int{t.User, t.Group}
		if st, ok := bases[k]; ok {
			return st
		}
		st := StaticBase(env, t, epoch)
		bases[k] = st
		return st
	}
	// A platform's standard and shared packages are built with its first
	// target's settings that uses the toolchain (a builder image's target
	// builds in its own image, with its own cache).
	var first []*plan.Target // each platform's first toolchain target
	n := 0                   // of them, those with a standard-library step
	for i := range p.Targets {
		t := &p.Targets[i]
		if _, ok := std[t.Platform]; !ok && t.Builder == "" {
			std[t.Platform] = llb.Scratch() // until its shared step below
			first = append(first, t)
			if len(env.Packages.Std[t.Platform]) > 0 {
				n++
			}
		}
	}
	lanes := stdLanes(env.Cores, n)
	var stds []llb.State // the steps so far, in order
	for _, t := range first {
		after := llb.Scratch()
		if lanes > 0 && len(stds) >= lanes {
			after = stds[len(stds)-lanes]
		}
		procs := stdProcs(env.Cores, n, len(stds))
		st := stdBuild(env, t, after, procs, builder)
		if st.Output() != nil {
			stds = append(stds, st)
		}
		std[t.Platform] = sharedBuild(env, t, mods, st, procs, builder)
	}
	g := &Graph{}
	for i := range p.Targets {
		t := &p.Targets[i]
		gate, ok := std[t.Platform]
		if !ok {
			gate = llb.Scratch()
		}
		bin := compile(env, t, mods, gate, builder)
		gt := Target{Plan: t, Binary: bin}
		if t.Outputs.Image {
			img, err := image(env, t, bin, epoch, staticBase)
			if err != nil {
				return nil, err
			}
			gt.Image = img
		}
		g.Targets = append(g.Targets, gt)
	}
	return g, nil
}

// goEnv is the environment shared by every Go step.
func goEnv(s llb.State) llb.State {
	return s.AddEnv("PATH", GOROOT+"/bin:/usr/bin:/bin").
		AddEnv("HOME", "/root").
		AddEnv("GOCACHE", BuildCache).
		AddEnv("GOMODCACHE", ModCache).
		AddEnv("GOTOOLCHAIN", "local").
		AddEnv("GOTELEMETRY", "off")
}

func modFiles(env Env) llb.State {
	return llb.Scratch().File(llb.Copy(env.Context, "/", "/", &llb.CopyInfo{
		IncludePatterns:    []string{"go.mod", "go.sum"},
		AllowEmptyWildcard: true,
		AllowWildcard:      true,
	}), llb.WithCustomName("[berth] go.mod, go.sum"))
}

// modDownload downloads the module's dependencies into a state of its own,
// keyed only on go.mod and go.sum.
func modDownload(env Env, builder llb.ConstraintsOpt) llb.State {
	p := env.Plan
	s := goEnv(llb.Scratch()).
		AddEnv("GOFLAGS", "-mod=readonly").
		AddEnv("GOPROXY", p.Go.Proxy).
		AddEnv("GOSUMDB", p.Go.SumDB).
		Dir(SrcDir)
	if p.Go.Private != "" {
		s = s.AddEnv("GOPRIVATE", p.Go.Private)
	}
	net := pb.NetMode_UNSET
	if env.HostNetwork {
		net = pb.NetMode_HOST
	}
	opts := []llb.RunOption{llb.Network(net)}
	for _, name := range SecretNames(p) {
		opts = append(opts, llb.AddSecret(SecretPath(name), llb.SecretID(name), llb.SecretFileOpt(0, 0, 0o400)))
	}
	run := s.Run(append(opts,
		llb.Args([]string{GOROOT + "/bin/go", "mod", "download", "-x"}),
		toolchainMount(env),
		llb.AddMount(SrcDir, modFiles(env), llb.Readonly),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()),
		llb.WithCustomName("[berth] go mod download"),
		builder,
	)...)
	return run.AddMount(ModCache, llb.Scratch())
}

// SecretNames are the secrets of every service of the plan, sorted: the
// module download is shared, so it sees them all.
func SecretNames(p *plan.Plan) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range p.Targets {
		for _, s := range t.Secrets {
			if !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, s.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// SecretPath is where a secret is mounted in the module download step.
func SecretPath(name string) string {
	if name == "netrc" {
		return "/root/.netrc"
	}
	return "/run/secrets/" + name
}

// source is the part of the module a service needs.
func source(env Env, service string) llb.State {
	inc, ok := env.Packages.Include[service]
	if !ok {
		return env.Context
	}
	pats := append([]string{"go.mod", "go.sum"}, inc...)
	return llb.Scratch().File(llb.Copy(env.Context, "/", "/", &llb.CopyInfo{
		IncludePatterns:    pats,
		AllowEmptyWildcard: true,
		AllowWildcard:      true,
	}), llb.WithCustomName("[berth] source of "+service))
}

// buildEnv applies a target's go build environment.
func buildEnv(s llb.State, t *plan.Target) llb.State {
	for _, kv := range t.BuildEnv {
		k, v, _ := strings.Cut(kv, "=")
		s = s.AddEnv(k, v)
	}
	return s
}

// stdBuild compiles the standard library packages the project uses on
// t's platform into the build cache, once, before services fan out. It
// needs only the toolchain: it runs outside the module (standard packages
// compile the same in or out of it), so it starts while the module's
// dependencies download.
//
// On an engine whose cores berth knows, the platforms' steps are spread
// over them (stdLanes): procs, when not 0, is each step's GOMAXPROCS (go
// build then runs that many compiles at once, each compile's back end and
// collector as many threads), and after, when it has an output, the
// step this one waits for. A go build alone leaves cores idle where its
// packages wait on each other (the floor's host go build kept 2 cores 94%
// busy); two at the full count each run twice the threads the cores
// hold, and did a tenth more CPU work for the same packages (2 cores:
// 123.8 and 112.5 core-s side by side against 111.5 and 102.2 one after
// the other). One per core, side by side, keeps the cores busy without
// that: a cold build of the benchmark's 2 platforms on 2 cores finished
// 0.6–5.2% sooner (4 alternated rounds) than with the steps one after the
// other at 2 each, idle core time down from 7–9 to 3–5 core-s.
// GOMAXPROCS changes no compile's output or cache key, so the services'
// steps find these packages in the cache whatever it was. The wait costs
// no rebuild either: its output is empty, so the steps after a platform's
// standard library are keyed on what they mount, not on which step ran.
func stdBuild(env Env, t *plan.Target, after llb.State, procs int, builder llb.ConstraintsOpt) llb.State {
	pkgs := env.Packages.Std[t.Platform]
	if len(pkgs) == 0 {
		return llb.Scratch()
	}
	args := append([]string{GOROOT + "/bin/go", "build"}, packageFlags(t)...)
	args = append(args, pkgs...)
	s := stdGC(withProcs(buildEnv(goEnv(llb.Scratch()), t), procs), procs).Dir("/")
	opts := []llb.RunOption{
		llb.Args(args),
		toolchainMount(env),
		llb.AddMount(BuildCache, llb.Scratch(), llb.AsPersistentCacheDir(CacheID, llb.CacheMountShared)),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()),
		llb.Network(pb.NetMode_NONE),
		llb.WithCustomName(fmt.Sprintf("[berth] go build std (%s, %d packages)", t.Platform, len(pkgs))),
		builder,
	}
	if after.Output() != nil {
		opts = append(opts, llb.AddMount("/.berth-after", after, llb.Readonly))
	}
	run := s.Run(opts...)
	return run.AddMount("/done", llb.Scratch())
}

// sharedBuild compiles the platform's shared packages (Packages.Shared)
// into the build cache after the standard library (std, the gate it
// mounts), from the module's files they need, and returns the gate the
// services' steps wait on. A service's step then compiles only what is
// its own. The gate's output is empty: when a shared package changes,
// this step runs again, and only the services whose own files changed
// (those that import it: their sources hold its files) run after it.
// procs is its GOMAXPROCS: its platform's standard-library step's.
func sharedBuild(env Env, t *plan.Target, mods, std llb.State, procs int, builder llb.ConstraintsOpt) llb.State {
	pkgs := env.Packages.Shared[t.Platform]
	if len(pkgs) == 0 {
		return std
	}
	src := llb.Scratch().File(llb.Copy(env.Context, "/", "/", &llb.CopyInfo{
		IncludePatterns:    append([]string{"go.mod", "go.sum"}, env.Packages.SharedFiles...),
		AllowEmptyWildcard: true,
		AllowWildcard:      true,
	}), llb.WithCustomName("[berth] source of the shared packages"))
	args := append([]string{GOROOT + "/bin/go", "build"}, packageFlags(t)...)
	args = append(args, pkgs...)
	noun := "packages"
	if len(pkgs) == 1 {
		noun = "package"
	}
	run := withProcs(buildEnv(goEnv(llb.Scratch()), t), procs).Dir(SrcDir).Run(
		llb.Args(args),
		toolchainMount(env),
		llb.AddMount(SrcDir, src, llb.Readonly),
		llb.AddMount(ModCache, mods, llb.Readonly),
		llb.AddMount(BuildCache, llb.Scratch(), llb.AsPersistentCacheDir(CacheID, llb.CacheMountShared)),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()),
		llb.AddMount("/.berth-std", std, llb.Readonly),
		llb.Network(pb.NetMode_NONE),
		llb.WithCustomName(fmt.Sprintf("[berth] go build shared (%s, %d %s)", t.Platform, len(pkgs), noun)),
		builder,
	)
	return run.AddMount("/done", llb.Scratch())
}

// stdGC turns off the collector of a standard-library step's processes
// (the go command and its compiles) below a soft limit of 1 GiB each when
// the step's GOMAXPROCS is 1 (stdProcs gives a step 1 when the engine's
// cores do not cover two for each platform). A compile then
// runs with -c=1, its default at GOMAXPROCS 1, and at -c=1 the compiler
// gives up its own head start of a 128 MB heap before its first
// collection: it collects all along. On 2 cores one platform's standard
// library took 41.4 core-s at GOMAXPROCS 1 against 39.4 at 2 (the
// floor's), and 34.0 with the collector off below the limit (medians of 3
// interleaved host runs; GOGC=200 gave 40.5, GOGC=400 36.7); cold builds of
// the benchmark took 0.89× as long. Memory is the price: the standard
// library's largest compile then peaks at 690 MB, the go command at
// 120 MB, and the benchmark's cold build at 1.6 GB for all processes
// together, against 0.74 GB before. With GOMAXPROCS 1 per step and a step
// per core at most, one compile runs per core. Not on other steps: at
// GOMAXPROCS 2 or more the compiler keeps its head start, and the module's
// own packages, in the shared and services' steps, may hold more than the
// limit live, where a collector held to it would run all along. The
// setting is a constant and changes no compile's output: the binaries are
// the same bytes, and go's cache keys do not include it.
func stdGC(s llb.State, procs int) llb.State {
	if procs != 1 {
		return s
	}
	return s.AddEnv("GOGC", "off").AddEnv("GOMEMLIMIT", "1GiB")
}

// stdLanes is how many of n standard-library steps run at once on an
// engine's cores: one per core at most; 0, no bound, when the cores are
// not known.
func stdLanes(cores, n int) int {
	if cores <= 0 {
		return 0
	}
	return min(cores, n)
}

// stdProcs is the GOMAXPROCS of the i-th of n standard-library steps (and
// of its platform's shared step): its share of the cores, the first
// cores%n steps one more, at least 1; 0 (go's default, every core) when
// the cores are not known.
func stdProcs(cores, n, i int) int {
	if cores <= 0 || n == 0 {
		return 0
	}
	p := cores / n
	if i < cores%n {
		p++
	}
	return max(1, p)
}

// withProcs sets a step's GOMAXPROCS, unless procs is 0.
func withProcs(s llb.State, procs int) llb.State {
	if procs <= 0 {
		return s
	}
	return s.AddEnv("GOMAXPROCS", strconv.Itoa(procs))
}

// packageFlags are t's build flags that compile packages: all but the
// link's.
func packageFlags(t *plan.Target) []string {
	var out []string
	for _, f := range t.BuildFlags {
		if !strings.HasPrefix(f, "-ldflags") {
			out = append(out, f)
		}
	}
	return out
}

// toolchainMount mounts the Go toolchain read-only at GOROOT.
func toolchainMount(env Env) llb.RunOption {
	if env.ToolchainPinned {
		return llb.AddMount(GOROOT, env.Toolchain, llb.Readonly, llb.ContentCache(llb.MountContentCacheOff))
	}
	return llb.AddMount(GOROOT, env.Toolchain, llb.Readonly)
}

// compile builds one target's binary; the result holds /<binary name>.
func compile(env Env, t *plan.Target, mods, gate llb.State, builder llb.ConstraintsOpt) llb.State {
	goBin := GOROOT + "/bin/go"
	root := llb.Scratch()
	toolchain := toolchainMount(env)
	if t.Builder != "" {
		// The service's own build image (pinned by digest), e.g. with a C
		// toolchain for cgo: its go, on the builder's platform.
		root = llb.Image(t.Builder, llb.Platform(env.Builder), llb.WithCustomName("[berth] builder "+t.Builder))
		goBin = "go"
		toolchain = llb.AddEnv("PATH", "/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		gate = llb.Scratch() // the std step warms the toolchain's cache, not the image's
	}
	args := append([]string{goBin, "build"}, t.BuildFlags...)
	args = append(args, "-o", path.Join(OutDir, t.BinaryName), t.Main)
	s := buildEnv(goEnv(root), t).Dir(SrcDir)
	opts := []llb.RunOption{
		llb.Args(args),
		toolchain,
		llb.AddMount(SrcDir, source(env, t.Service), llb.Readonly),
		llb.AddMount(ModCache, mods, llb.Readonly),
		llb.AddMount(BuildCache, llb.Scratch(), llb.AsPersistentCacheDir(CacheID, llb.CacheMountShared)),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()),
		llb.AddMount("/.berth-std", gate, llb.Readonly),
		llb.Network(pb.NetMode_NONE),
		llb.WithCustomName(fmt.Sprintf("[berth] go build %s (%s)", t.Service, t.Platform)),
		builder,
	}
	if loc := location(env, t.Source); loc != nil {
		opts = append(opts, loc)
	}
	return s.Run(opts...).AddMount(OutDir, llb.Scratch())
}

// location attaches the service's config range to a step.
func location(env Env, r diag.Range) llb.ConstraintsOpt {
	sm := env.Sources[r.Start.File]
	if sm == nil {
		return nil
	}
	end := r.End
	if !end.IsValid() {
		end = r.Start
	}
	return sm.Location([]*pb.Range{{
		Start: &pb.Position{Line: int32(r.Start.Line), Character: int32(r.Start.Col)},
		End:   &pb.Position{Line: int32(end.Line), Character: int32(end.Col)},
	}})
}

// OCIPlatform converts "linux/arm/v7".
func OCIPlatform(s string) ocispecs.Platform {
	parts := strings.SplitN(s, "/", 3)
	p := ocispecs.Platform{OS: parts[0]}
	if len(parts) > 1 {
		p.Architecture = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p
}

func image(env Env, t *plan.Target, bin llb.State, epoch time.Time, staticBase func(*plan.Target) llb.State) (*Image, error) {
	pf := OCIPlatform(t.Platform)
	var base llb.State
	var history []ocispecs.History
	switch t.Base {
	case "scratch":
		base = llb.Scratch()
	case "static":
		base = staticBase(t)
		history = append(history, ocispecs.History{Created: &epoch, CreatedBy: "berth: static base (passwd, group, CA certificates, zoneinfo)", Comment: "berth"})
	default:
		base = llb.Image(t.Base, llb.Platform(pf), llb.WithCustomName("[berth] base "+t.Base))
	}
	name := t.BinaryName
	// One copy, stamped: the binary sits at the root, so the layer holds
	// no directory whose time the copy would change.
	st := base.File(llb.Copy(bin, "/"+name, ImagePath(name), &llb.CopyInfo{CreatedTime: &epoch}),
		llb.WithCustomName(fmt.Sprintf("[berth] image %s (%s)", t.Service, t.Platform)))
	history = append(history, ocispecs.History{Created: &epoch, CreatedBy: "berth: COPY " + name + " /", Comment: "berth"})

	cfg := ocispecs.Image{
		Created:  &epoch,
		Platform: pf,
		Config: ocispecs.ImageConfig{
			User:       strconv.Itoa(t.User) + ":" + strconv.Itoa(t.Group),
			Env:        imageEnv(t),
			Entrypoint: []string{ImagePath(name)},
			Cmd:        append([]string{}, t.Args...),
			WorkingDir: "/",
			Labels:     map[string]string{},
		},
		RootFS:  ocispecs.RootFS{Type: "layers"},
		History: history,
	}
	if len(t.Ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range t.Ports {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	for _, l := range t.Labels {
		cfg.Config.Labels[l.Name] = l.Value
	}
	return &Image{State: st, Config: cfg, Platform: pf}, nil
}

// ImagePath is where an image holds its binary: at the root, as a
// hand-written minimal Dockerfile puts it (COPY --from=build /out/app /).
// The layer then holds that one file and no directory entries, so it is
// no larger than the binary needs; the Dockerfile berth gen writes uses the
// same path. Bare-metal installs use /usr/local/bin (see pkg/systemd).
func ImagePath(binary string) string { return "/" + binary }

// stamped copies a staging state's whole tree with every time set to the
// epoch. Adding a file changes its directory's time, so times set while
// creating files do not survive; a copy sets each directory's time after
// its contents, and the layer is then the same on every build.
func stamped(staging llb.State, epoch time.Time) *llb.FileAction {
	return llb.Copy(staging, "/", "/", &llb.CopyInfo{CopyDirContentsOnly: true, CreatedTime: &epoch})
}

// imageEnv is the image's environment: PATH, ZONEINFO for the static base,
// then the target's runtime environment, sorted by name.
func imageEnv(t *plan.Target) []string {
	env := map[string]string{"PATH": ImagePATH}
	if t.Base == "static" {
		env["ZONEINFO"] = ZoneinfoPath
		env["SSL_CERT_FILE"] = CACertsPath
	}
	for _, e := range t.Env {
		env[e.Name] = e.Value
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + env[k]
	}
	return out
}
