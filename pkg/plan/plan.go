package plan

import (
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/diag"
)

// DefaultVersion is the version when neither the config nor git gives one.
const DefaultVersion = "0.0.0-dev"

// Inputs are facts gathered outside the planner.
type Inputs struct {
	// ModuleDir is the Go module root, relative to the config directory
	// ("." when they are the same), written with forward slashes.
	ModuleDir string
	// ModulePath is the module path declared in go.mod.
	ModulePath string
	// GoVersion is the default Go version from go.mod (toolchain or go line).
	GoVersion string
	// GitVersion is `git describe --tags` without the leading v; "" if none.
	GitVersion string
	// Revision is the commit the tree is at; "" outside git.
	Revision string
	// SourceDateEpoch is SOURCE_DATE_EPOCH, else the last commit's time, else 0.
	SourceDateEpoch int64
	// Environment defaults for the go block.
	GOPROXY, GOSUMDB, GOPRIVATE string
	// OutDir is where outputs go, relative to the config directory.
	OutDir string
	// ConfigDir is the absolute config directory: source positions in the
	// plan are relative to it, so a plan is the same on every machine.
	ConfigDir string
	// ConfigInModule is the config directory relative to the module root
	// ("." when they are the same), so that Command runs from the root.
	ConfigInModule string
}

// Plan is the resolved project. Its JSON form is berth's stable `plan
// --json` format: field names never change meaning; new fields may appear.
type Plan struct {
	Project         string   `json:"project"`
	Version         string   `json:"version"`
	Revision        string   `json:"revision"`
	SourceDateEpoch int64    `json:"sourceDateEpoch"`
	Created         string   `json:"created"`
	Module          Module   `json:"module"`
	Go              Go       `json:"go"`
	OutDir          string   `json:"outDir"`
	Services        []string `json:"services"`
	Targets         []Target `json:"targets"`
}

// Module is the Go module the services live in.
type Module struct {
	Dir  string `json:"dir"`
	Path string `json:"path"`
}

// Go is the toolchain and module settings every target builds with.
type Go struct {
	Version string   `json:"version"`
	Proxy   string   `json:"proxy"`
	SumDB   string   `json:"sumdb"`
	Private string   `json:"private"`
	Flags   []string `json:"flags"`
	Tags    []string `json:"tags"`
}

// Target is one service on one platform.
type Target struct {
	Service  string `json:"service"`
	Platform string `json:"platform"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	GOARM    string `json:"goarm,omitempty"`
	Main     string `json:"main"`
	// BinaryName is the file name of the binary (service[.exe]).
	BinaryName string `json:"binaryName"`
	// BuildEnv is the environment of `go build`, sorted.
	BuildEnv []string `json:"buildEnv"`
	// BuildFlags are the flags of `go build` before -o.
	BuildFlags []string `json:"buildFlags"`
	Ldflags    string   `json:"ldflags"`
	// Command is the full `go build` command, for the host, writing to
	// Paths.Binary.
	Command     []string `json:"command"`
	Base        string   `json:"base"`
	Builder     string   `json:"builder,omitempty"`
	CGO         bool     `json:"cgo"`
	User        int      `json:"user"`
	Group       int      `json:"group"`
	Description string   `json:"description"`
	Args        []string `json:"args"`
	// Env is the runtime environment: the service's env plus GOMAXPROCS
	// and GOMEMLIMIT, sorted by name.
	Env        []EnvVar `json:"env"`
	Ports      []string `json:"ports"`
	Limits     Limits   `json:"limits"`
	GOMAXPROCS int      `json:"gomaxprocs,omitempty"`
	GOMEMLIMIT string   `json:"gomemlimit,omitempty"`
	Labels     []Label  `json:"labels"`
	Outputs    Outputs  `json:"outputs"`
	// Systemd are the service's unit directives to add or override.
	Systemd []config.Directive `json:"systemd"`
	// Secrets are given to the module download step only.
	Secrets []config.Secret `json:"secrets"`
	Paths   Paths           `json:"paths"`
	// Source is where the service is declared.
	Source diag.Range `json:"source"`
}

// EnvVar is a name and value.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Label is an image label.
type Label struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Limits are the runtime limits; zero means none.
type Limits struct {
	CPU    float64 `json:"cpu,omitempty"`
	Memory int64   `json:"memory,omitempty"`
	NoFile int64   `json:"nofile,omitempty"`
	Tasks  int64   `json:"tasks,omitempty"`
}

// Outputs say what is produced for the target.
type Outputs struct {
	Image      bool `json:"image"`
	Binary     bool `json:"binary"`
	Systemd    bool `json:"systemd"`
	Dockerfile bool `json:"dockerfile"`
}

// Paths are output locations relative to the config directory; empty when
// the output is off.
type Paths struct {
	Binary     string `json:"binary,omitempty"`
	Image      string `json:"image,omitempty"`
	ImageRef   string `json:"imageRef,omitempty"`
	Dockerfile string `json:"dockerfile,omitempty"`
	Unit       string `json:"unit,omitempty"`
}

// New resolves p. It is pure and deterministic.
func New(p *config.Project, in Inputs) (*Plan, error) {
	out := in.OutDir
	if out == "" {
		out = "dist"
	}
	version := p.Version
	if version == "" {
		version = in.GitVersion
	}
	if version == "" {
		version = DefaultVersion
	}
	g := Go{
		Version: firstNonEmpty(p.Go.Version, in.GoVersion),
		Proxy:   firstNonEmpty(p.Go.Proxy, in.GOPROXY, "https://proxy.golang.org,direct"),
		SumDB:   firstNonEmpty(p.Go.SumDB, in.GOSUMDB, "sum.golang.org"),
		Private: firstNonEmpty(p.Go.Private, in.GOPRIVATE),
	}
	flags, ldExtra, tags := splitFlags(p.Go.Flags)
	g.Flags = nonNil(flags)
	g.Tags = nonNil(union(p.Go.Tags, tags))
	if g.Version == "" {
		pos := p.Fields["go"]
		return nil, diag.Errorf(pos, "go.version", "no Go version: set go: version: \"1.26.8\" or a go line in go.mod")
	}
	created := time.Unix(in.SourceDateEpoch, 0).UTC().Format(time.RFC3339)
	pl := &Plan{
		Project:         p.Name,
		Version:         version,
		Revision:        in.Revision,
		SourceDateEpoch: in.SourceDateEpoch,
		Created:         created,
		Module:          Module{Dir: firstNonEmpty(in.ModuleDir, "."), Path: in.ModulePath},
		Go:              g,
		OutDir:          out,
	}
	ldflags := Ldflags(p.Go.Stamp, version, in.Revision, created)
	if ldExtra != "" {
		ldflags += " " + ldExtra
	}
	if len(p.Services) > 0 {
		pl.Services = make([]string, 0, len(p.Services))
	}
	if n := p.Targets(); n > 0 {
		pl.Targets = make([]Target, 0, n)
	}
	for _, s := range p.Services {
		pl.Services = append(pl.Services, s.Name)
		sv := perService(pl, in, s)
		for _, pf := range s.Platforms {
			pl.Targets = append(pl.Targets, target(pl, in, s, &sv, pf, ldflags))
		}
	}
	return pl, nil
}

// serviceParts are the parts of a service's targets that do not depend
// on the platform, worked out once per service.
type serviceParts struct {
	description, imageRef, dockerfile, unit string
	source                                  diag.Range
	labels                                  []Label
}

// perService works out the serviceParts of s.
func perService(pl *Plan, in Inputs, s *config.Service) serviceParts {
	sv := serviceParts{
		description: firstNonEmpty(s.Description, s.Name),
		imageRef:    s.Name + ":" + ImageTag(pl.Version),
		dockerfile:  path.Join(pl.OutDir, "docker", s.Name, "Dockerfile"),
		unit:        path.Join(pl.OutDir, "systemd", s.Name+".service"),
		source:      diag.Range{Start: s.Range.Start.Rel(in.ConfigDir), End: s.Range.End.Rel(in.ConfigDir)},
	}
	// Labels without a value (no revision outside git) are left out.
	for _, l := range []Label{
		{"org.opencontainers.image.created", pl.Created},
		{"org.opencontainers.image.description", sv.description},
		{"org.opencontainers.image.revision", pl.Revision},
		{"org.opencontainers.image.source", pl.Module.Path},
		{"org.opencontainers.image.title", s.Name},
		{"org.opencontainers.image.version", pl.Version},
	} {
		if l.Value != "" {
			sv.labels = append(sv.labels, l)
		}
	}
	return sv
}

// Ldflags are the linker flags: stripped, no build id, version stamps.
func Ldflags(st config.Stamp, version, revision, date string) string {
	parts := []string{"-s", "-w", "-buildid="}
	for _, kv := range [][2]string{{st.Version, version}, {st.Revision, revision}, {st.Date, date}} {
		if kv[0] != "" {
			parts = append(parts, "-X", kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, " ")
}

// NoDWARF is the compile flag berth adds when the linker drops the debug
// information (-w, in berth's -ldflags): the compiler then does not write
// what the link throws away. Cold host builds of the benchmark's 8
// services for linux/arm64 (GOMAXPROCS=1 GOGC=off, as berth's
// standard-library steps) took 36.1, 44.0, 42.5, 42.2 and 42.0 core-s with
// it against 44.6, 42.6, 48.8, 43.9 and 47.1 without (interleaved, median
// 42.2 against 44.6; paired, 4.0 core-s less on average), and the largest
// compile peaked at 608 MB against 670; both platforms' builds took 3–14%
// less CPU side by side as berth runs them, and 11–12% less one after
// the other at go's defaults (3 interleaved rounds each, 2 cores). The
// binaries do the same, with their functions in another order, and their
// build info says so (build -gcflags=all=-dwarf=false). A go.flags
// -gcflags comes after it, so for the packages its pattern matches it
// wins, as go build's last matching -gcflags does.
const NoDWARF = "-gcflags=all=-dwarf=false"

// stripsDWARF reports whether the linker flags drop the DWARF
// information: berth's start with -s -w, and a later -s or -w with a
// value (-w=false) may turn it back on, so then berth leaves the
// compiler's default alone.
func stripsDWARF(ldflags string) bool {
	strip := false
	for _, f := range strings.Fields(ldflags) {
		name, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(f, "-"), "-"), "=")
		if name != "s" && name != "w" || !strings.HasPrefix(f, "-") {
			continue
		}
		if hasValue {
			return false
		}
		strip = true
	}
	return strip
}

// splitFlags takes -ldflags and -tags out of go.flags: berth passes
// each once (a second -ldflags or -tags would replace berth's, dropping
// -s -w -buildid= and the go.stamp variables, or go.tags), so a user's
// linker flags follow berth's in the one -ldflags (a variable set twice
// with -X takes the last value) and their tags join go.tags, where go
// list sees them too. Both forms, -flag=value and -flag value, and --flag.
func splitFlags(in []string) (rest []string, ldflags string, tags []string) {
	var ld []string
	for i := 0; i < len(in); i++ {
		f := in[i]
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(f, "-"), "-"), "=")
		if name != "ldflags" && name != "tags" {
			rest = append(rest, f)
			continue
		}
		if !hasValue && i+1 < len(in) {
			i++
			value = in[i]
		}
		if name == "ldflags" {
			if value = strings.TrimSpace(value); value != "" {
				ld = append(ld, value)
			}
			continue
		}
		tags = append(tags, strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	return rest, strings.Join(ld, " "), tags
}

// union is a followed by the elements of b it does not hold, in order.
func union(a, b []string) []string {
	out := append([]string(nil), a...)
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func target(pl *Plan, in Inputs, s *config.Service, sv *serviceParts, pf config.Platform, ldflags string) Target {
	t := Target{
		Service:     s.Name,
		Platform:    pf.String(),
		GOOS:        pf.OS,
		GOARCH:      pf.Arch,
		Main:        s.Main,
		BinaryName:  s.Name,
		Base:        s.Base,
		Builder:     s.Builder,
		CGO:         s.CGO,
		User:        s.User,
		Group:       s.Group,
		Description: sv.description,
		Args:        nonNil(s.Args),
		Ldflags:     ldflags,
		Limits: Limits{
			CPU: s.Limits.CPU, Memory: s.Limits.Memory,
			NoFile: s.Limits.NoFile, Tasks: s.Limits.Tasks,
		},
		Outputs: Outputs{
			Binary:     s.Outputs.Binary,
			Image:      s.Outputs.Image && pf.OS == "linux",
			Systemd:    s.Outputs.Systemd && pf.OS == "linux",
			Dockerfile: s.Outputs.Dockerfile && pf.OS == "linux",
		},
		Systemd: append([]config.Directive{}, s.Systemd...),
		Secrets: append([]config.Secret{}, s.Secrets...),
		Source:  sv.source,
	}
	if pf.Arch == "arm" && pf.Variant != "" {
		t.GOARM = strings.TrimPrefix(pf.Variant, "v")
	}
	if pf.OS == "windows" {
		t.BinaryName += ".exe"
	}
	cgo := "0"
	if s.CGO {
		cgo = "1"
	}
	t.BuildEnv = []string{
		"CGO_ENABLED=" + cgo,
		"GOARCH=" + t.GOARCH,
		"GOFLAGS=-mod=readonly",
		"GOOS=" + t.GOOS,
		"GOPROXY=" + pl.Go.Proxy,
		"GOSUMDB=" + pl.Go.SumDB,
		"GOTOOLCHAIN=local",
	}
	if t.GOARM != "" {
		t.BuildEnv = append(t.BuildEnv, "GOARM="+t.GOARM)
	}
	if pl.Go.Private != "" {
		t.BuildEnv = append(t.BuildEnv, "GOPRIVATE="+pl.Go.Private)
	}
	sort.Strings(t.BuildEnv)
	t.BuildFlags = []string{"-trimpath"}
	if stripsDWARF(ldflags) {
		t.BuildFlags = append(t.BuildFlags, NoDWARF)
	}
	if len(pl.Go.Tags) > 0 {
		t.BuildFlags = append(t.BuildFlags, "-tags="+strings.Join(pl.Go.Tags, ","))
	}
	t.BuildFlags = append(t.BuildFlags, pl.Go.Flags...)
	t.BuildFlags = append(t.BuildFlags, "-ldflags="+ldflags)

	t.GOMAXPROCS = s.Runtime.GOMAXPROCS
	if t.GOMAXPROCS == 0 && s.Limits.CPU > 0 {
		t.GOMAXPROCS = GOMAXPROCS(s.Limits.CPU)
	}
	t.GOMEMLIMIT = s.Runtime.GOMEMLIMITText
	if t.GOMEMLIMIT == "" && s.Limits.Memory > 0 {
		t.GOMEMLIMIT = GOMEMLIMIT(s.Limits.Memory)
	}
	env := map[string]string{}
	for _, e := range s.Env {
		env[e.Name] = e.Value
	}
	// Explicit env wins over derived values, so a user can still say
	// GOMAXPROCS themselves.
	if _, ok := env["GOMAXPROCS"]; !ok && t.GOMAXPROCS > 0 {
		env["GOMAXPROCS"] = strconv.Itoa(t.GOMAXPROCS)
	}
	if _, ok := env["GOMEMLIMIT"]; !ok && t.GOMEMLIMIT != "" {
		env["GOMEMLIMIT"] = t.GOMEMLIMIT
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	t.Env = make([]EnvVar, 0, len(names))
	for _, k := range names {
		t.Env = append(t.Env, EnvVar{Name: k, Value: env[k]})
	}
	t.Ports = make([]string, 0, len(s.Ports))
	for _, p := range s.Ports {
		t.Ports = append(t.Ports, p.String())
	}
	// Each target has labels of its own, never shared with another's.
	t.Labels = append(make([]Label, 0, len(sv.labels)), sv.labels...)

	bin := path.Join(pl.OutDir, "bin", s.Name, pf.Dir(), t.BinaryName)
	if t.Outputs.Binary {
		t.Paths.Binary = bin
	}
	if t.Outputs.Image {
		t.Paths.Image = path.Join(pl.OutDir, "oci")
		t.Paths.ImageRef = sv.imageRef
	}
	if t.Outputs.Dockerfile {
		t.Paths.Dockerfile = sv.dockerfile
	}
	if t.Outputs.Systemd {
		t.Paths.Unit = sv.unit
	}
	// The command runs from the module root, where main is relative to.
	out := bin
	if !path.IsAbs(out) {
		out = path.Join(firstNonEmpty(in.ConfigInModule, "."), bin)
	}
	t.Command = append([]string{"go", "build"}, t.BuildFlags...)
	t.Command = append(t.Command, "-o", out, s.Main)
	return t
}

// ImageTag turns a version into a valid image tag ("+" is not allowed).
func ImageTag(v string) string { return strings.ReplaceAll(v, "+", "-") }

// GOMAXPROCS derives GOMAXPROCS from a CPU limit: ceil(cpu), at least 1.
func GOMAXPROCS(cpu float64) int {
	c := math.Ceil(cpu)
	switch {
	case c < 1 || math.IsNaN(c):
		return 1
	case c > math.MaxInt32:
		return math.MaxInt32
	}
	return int(c)
}

// GOMEMLIMIT derives GOMEMLIMIT from a memory limit: 90%, rounded down to
// a whole MiB ("230MiB" for 256Mi) when that keeps at least 89% of the
// memory; otherwise in KiB, then in bytes. Nothing is derived when 90% is
// under one byte.
func GOMEMLIMIT(memory int64) string {
	b := memory / 10 * 9
	b += memory % 10 * 9 / 10
	floor := memory/100*89 + memory%100*89/100
	switch {
	case b>>20 > 0 && (b>>20)<<20 >= floor:
		return fmt.Sprintf("%dMiB", b>>20)
	case b>>10 > 0 && (b>>10)<<10 >= floor:
		return fmt.Sprintf("%dKiB", b>>10)
	case b >= 1:
		return fmt.Sprintf("%dB", b)
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
