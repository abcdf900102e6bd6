package plan_test

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/plan"
)

func pf(s string) config.Platform { return config.ParsePlatform(s) }

// project is a hand-built, already validated project: services sorted by
// name, as config.Load returns them.
func project() *config.Project {
	all := config.Outputs{Binary: true, Image: true, Systemd: true, Dockerfile: true}
	return &config.Project{
		Name:    "shop",
		Version: "1.2.3+build.4",
		Go: config.Go{
			Version: "1.26.8",
			Flags:   []string{"-v"},
			Tags:    []string{"netgo", "osusergo"},
			Stamp:   config.Stamp{Version: "example.com/shop/v.Version", Date: "example.com/shop/v.Date"},
		},
		Dir:    "/cfg",
		Fields: map[string]diag.Pos{},
		Services: []*config.Service{
			{
				Name: "api",
				Main: "./cmd/api",
				// Declared order, not sorted: targets keep it.
				Platforms: []config.Platform{pf("linux/arm/v7"), pf("linux/amd64"), pf("windows/amd64"), pf("linux/arm/v6"), pf("darwin/arm64")},
				Base:      "static",
				User:      65532,
				Group:     65532,
				Args:      []string{"--listen=:8080"},
				Env: []config.EnvVar{
					{Name: "A", Value: "1"}, {Name: "GOMAXPROCS", Value: "8"}, {Name: "Z", Value: "26"},
				},
				Ports:   []config.Port{{Num: 8080, Proto: "tcp"}, {Num: 8443, Proto: "udp"}},
				Limits:  config.Limits{CPU: 1.5, Memory: 256 << 20, MemoryText: "256Mi"},
				Outputs: all,
				Systemd: []config.Directive{{Section: "Service", Name: "ProtectHome", Value: "read-only"}},
				Range: diag.Range{
					Start: diag.Pos{File: "/cfg/berth.cue", Line: 10, Col: 2},
					End:   diag.Pos{File: "/cfg/berth.cue", Line: 20, Col: 3},
				},
			},
			{
				Name:        "worker",
				Main:        "./cmd/worker",
				Description: "Background jobs",
				Platforms:   []config.Platform{pf("linux/amd64")},
				Base:        "scratch",
				User:        1000,
				Group:       1001,
				Env:         []config.EnvVar{{Name: "QUEUE", Value: "orders"}},
				Limits:      config.Limits{CPU: 0.5, Memory: 128 << 20},
				Runtime:     config.Runtime{GOMEMLIMIT: 100 << 20, GOMEMLIMITText: "100MiB"},
				Outputs:     config.Outputs{Binary: true, Image: true},
				Range: diag.Range{
					Start: diag.Pos{File: "/cfg/berth.cue", Line: 21, Col: 2},
					End:   diag.Pos{File: "/cfg/berth.cue", Line: 30, Col: 3},
				},
			},
		},
	}
}

func inputs() plan.Inputs {
	return plan.Inputs{
		ModuleDir:       ".",
		ModulePath:      "example.com/shop",
		GoVersion:       "1.25.0",
		Revision:        "abc123",
		SourceDateEpoch: 1700000000,
		GOPROXY:         "https://proxy.example.com",
		GOSUMDB:         "sum.golang.org",
		GOPRIVATE:       "example.com/private",
		ConfigDir:       "/cfg",
	}
}

func targetNames(p *plan.Plan) []string {
	var out []string
	for _, t := range p.Targets {
		out = append(out, t.Service+" "+t.Platform)
	}
	return out
}

func TestNew(t *testing.T) {
	p, err := plan.New(project(), inputs())
	if err != nil {
		t.Fatal(err)
	}
	if p.Project != "shop" || p.Version != "1.2.3+build.4" || p.Revision != "abc123" {
		t.Errorf("project, version, revision = %q %q %q", p.Project, p.Version, p.Revision)
	}
	if p.Created != "2023-11-14T22:13:20Z" || p.SourceDateEpoch != 1700000000 {
		t.Errorf("created %q, sourceDateEpoch %d", p.Created, p.SourceDateEpoch)
	}
	if p.OutDir != "dist" {
		t.Errorf("outDir %q, want the default dist", p.OutDir)
	}
	wantGo := plan.Go{
		Version: "1.26.8", // the config's, not go.mod's
		Proxy:   "https://proxy.example.com",
		SumDB:   "sum.golang.org",
		Private: "example.com/private",
		Flags:   []string{"-v"},
		Tags:    []string{"netgo", "osusergo"},
	}
	if !reflect.DeepEqual(p.Go, wantGo) {
		t.Errorf("go = %+v, want %+v", p.Go, wantGo)
	}
	if want := []string{"api", "worker"}; !slices.Equal(p.Services, want) {
		t.Errorf("services = %q, want %q", p.Services, want)
	}
	wantTargets := []string{
		"api linux/arm/v7", "api linux/amd64", "api windows/amd64", "api linux/arm/v6", "api darwin/arm64",
		"worker linux/amd64",
	}
	if got := targetNames(p); !slices.Equal(got, wantTargets) {
		t.Fatalf("targets = %q, want %q", got, wantTargets)
	}

	const ldflags = "-s -w -buildid= -X example.com/shop/v.Version=1.2.3+build.4 -X example.com/shop/v.Date=2023-11-14T22:13:20Z"
	for _, tc := range []struct {
		name       string
		index      int
		goos       string
		goarch     string
		goarm      string
		binaryName string
		outputs    plan.Outputs
		paths      plan.Paths
	}{
		{
			name: "arm v7 sets GOARM 7", index: 0, goos: "linux", goarch: "arm", goarm: "7", binaryName: "api",
			outputs: plan.Outputs{Binary: true, Image: true, Systemd: true, Dockerfile: true},
			paths: plan.Paths{
				Binary:     "dist/bin/api/linux_arm_v7/api",
				Image:      "dist/oci",
				ImageRef:   "api:1.2.3-build.4",
				Dockerfile: "dist/docker/api/Dockerfile",
				Unit:       "dist/systemd/api.service",
			},
		},
		{
			name: "amd64 has no GOARM", index: 1, goos: "linux", goarch: "amd64", binaryName: "api",
			outputs: plan.Outputs{Binary: true, Image: true, Systemd: true, Dockerfile: true},
			paths: plan.Paths{
				Binary:     "dist/bin/api/linux_amd64/api",
				Image:      "dist/oci",
				ImageRef:   "api:1.2.3-build.4",
				Dockerfile: "dist/docker/api/Dockerfile",
				Unit:       "dist/systemd/api.service",
			},
		},
		{
			name: "windows gets .exe and only a binary", index: 2, goos: "windows", goarch: "amd64", binaryName: "api.exe",
			outputs: plan.Outputs{Binary: true},
			paths:   plan.Paths{Binary: "dist/bin/api/windows_amd64/api.exe"},
		},
		{
			name: "arm v6 sets GOARM 6", index: 3, goos: "linux", goarch: "arm", goarm: "6", binaryName: "api",
			outputs: plan.Outputs{Binary: true, Image: true, Systemd: true, Dockerfile: true},
			paths: plan.Paths{
				Binary:     "dist/bin/api/linux_arm_v6/api",
				Image:      "dist/oci",
				ImageRef:   "api:1.2.3-build.4",
				Dockerfile: "dist/docker/api/Dockerfile",
				Unit:       "dist/systemd/api.service",
			},
		},
		{
			name: "darwin gets only a binary", index: 4, goos: "darwin", goarch: "arm64", binaryName: "api",
			outputs: plan.Outputs{Binary: true},
			paths:   plan.Paths{Binary: "dist/bin/api/darwin_arm64/api"},
		},
		{
			name: "outputs the service turned off have no path", index: 5, goos: "linux", goarch: "amd64", binaryName: "worker",
			outputs: plan.Outputs{Binary: true, Image: true},
			paths: plan.Paths{
				Binary:   "dist/bin/worker/linux_amd64/worker",
				Image:    "dist/oci",
				ImageRef: "worker:1.2.3-build.4",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := p.Targets[tc.index]
			if tg.GOOS != tc.goos || tg.GOARCH != tc.goarch || tg.GOARM != tc.goarm {
				t.Errorf("GOOS/GOARCH/GOARM = %s/%s/%q, want %s/%s/%q", tg.GOOS, tg.GOARCH, tg.GOARM, tc.goos, tc.goarch, tc.goarm)
			}
			if tg.BinaryName != tc.binaryName {
				t.Errorf("binaryName = %q, want %q", tg.BinaryName, tc.binaryName)
			}
			if tg.Outputs != tc.outputs {
				t.Errorf("outputs = %+v, want %+v", tg.Outputs, tc.outputs)
			}
			if tg.Paths != tc.paths {
				t.Errorf("paths = %+v, want %+v", tg.Paths, tc.paths)
			}

			if !sort.StringsAreSorted(tg.BuildEnv) {
				t.Errorf("buildEnv not sorted: %q", tg.BuildEnv)
			}
			wantEnv := []string{"CGO_ENABLED=0", "GOARCH=" + tc.goarch, "GOFLAGS=-mod=readonly", "GOOS=" + tc.goos,
				"GOPRIVATE=example.com/private", "GOPROXY=https://proxy.example.com", "GOSUMDB=sum.golang.org", "GOTOOLCHAIN=local"}
			if tc.goarm != "" {
				wantEnv = append(wantEnv, "GOARM="+tc.goarm)
			}
			sort.Strings(wantEnv)
			if !slices.Equal(tg.BuildEnv, wantEnv) {
				t.Errorf("buildEnv = %q, want %q", tg.BuildEnv, wantEnv)
			}

			wantFlags := []string{"-trimpath", "-gcflags=all=-dwarf=false", "-tags=netgo,osusergo", "-v", "-ldflags=" + ldflags}
			if !slices.Equal(tg.BuildFlags, wantFlags) {
				t.Errorf("buildFlags = %q, want %q", tg.BuildFlags, wantFlags)
			}
			if tg.Ldflags != ldflags {
				t.Errorf("ldflags = %q, want %q", tg.Ldflags, ldflags)
			}
			bin := "dist/bin/" + tg.Service + "/" + config.ParsePlatform(tg.Platform).Dir() + "/" + tc.binaryName
			wantCmd := append(append([]string{"go", "build"}, wantFlags...), "-o", bin, tg.Main)
			if !slices.Equal(tg.Command, wantCmd) {
				t.Errorf("command = %q, want %q", tg.Command, wantCmd)
			}
			if tg.Service == "api" && !reflect.DeepEqual(tg.Systemd, []config.Directive{{Section: "Service", Name: "ProtectHome", Value: "read-only"}}) {
				t.Errorf("systemd = %+v, want the service's directive", tg.Systemd)
			}
			if tg.Source.Start.File != "./berth.cue" || tg.Source.End.File != "./berth.cue" || tg.Source.Start.Line == 0 {
				t.Errorf("source = %+v, want positions in ./berth.cue relative to the config dir", tg.Source)
			}
		})
	}
}

func TestNewRuntimeEnv(t *testing.T) {
	p, err := plan.New(project(), inputs())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		index      int
		env        []plan.EnvVar
		gomaxprocs int
		gomemlimit string
	}{
		{
			name:  "explicit GOMAXPROCS in env wins, GOMEMLIMIT derived from memory",
			index: 0,
			env: []plan.EnvVar{
				{Name: "A", Value: "1"}, {Name: "GOMAXPROCS", Value: "8"}, {Name: "GOMEMLIMIT", Value: "230MiB"}, {Name: "Z", Value: "26"},
			},
			gomaxprocs: 2, gomemlimit: "230MiB",
		},
		{
			name:  "runtime.gomemlimit wins over the derived value",
			index: 5,
			env: []plan.EnvVar{
				{Name: "GOMAXPROCS", Value: "1"}, {Name: "GOMEMLIMIT", Value: "100MiB"}, {Name: "QUEUE", Value: "orders"},
			},
			gomaxprocs: 1, gomemlimit: "100MiB",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := p.Targets[tc.index]
			if !reflect.DeepEqual(tg.Env, tc.env) {
				t.Errorf("env = %+v, want %+v", tg.Env, tc.env)
			}
			if tg.GOMAXPROCS != tc.gomaxprocs || tg.GOMEMLIMIT != tc.gomemlimit {
				t.Errorf("gomaxprocs %d, gomemlimit %q; want %d, %q", tg.GOMAXPROCS, tg.GOMEMLIMIT, tc.gomaxprocs, tc.gomemlimit)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*config.Project, *plan.Inputs)
		check  func(*plan.Plan) string
		errMsg string
	}{
		{
			name: "version from git, then the default",
			mod:  func(p *config.Project, in *plan.Inputs) { p.Version = ""; in.GitVersion = "" },
			check: func(pl *plan.Plan) string {
				if pl.Version != plan.DefaultVersion || pl.Targets[0].Paths.ImageRef != "api:0.0.0-dev" {
					return fmt.Sprintf("version %q, ref %q", pl.Version, pl.Targets[0].Paths.ImageRef)
				}
				return ""
			},
		},
		{
			name: "git version when the config has none",
			mod:  func(p *config.Project, in *plan.Inputs) { p.Version = ""; in.GitVersion = "2.0.0-3-gabc" },
			check: func(pl *plan.Plan) string {
				if pl.Version != "2.0.0-3-gabc" {
					return "version " + pl.Version
				}
				return ""
			},
		},
		{
			name: "go version from go.mod, proxy and sumdb built in, no GOPRIVATE",
			mod: func(p *config.Project, in *plan.Inputs) {
				p.Go = config.Go{}
				in.GOPROXY, in.GOSUMDB, in.GOPRIVATE = "", "", ""
			},
			check: func(pl *plan.Plan) string {
				g := pl.Go
				if g.Version != "1.25.0" || g.Proxy != "https://proxy.golang.org,direct" || g.SumDB != "sum.golang.org" || g.Private != "" {
					return fmt.Sprintf("go %+v", g)
				}
				if g.Flags == nil || g.Tags == nil {
					return "flags or tags nil: they must encode as [] not null"
				}
				for _, e := range pl.Targets[0].BuildEnv {
					if strings.HasPrefix(e, "GOPRIVATE=") {
						return "GOPRIVATE in buildEnv: " + e
					}
				}
				if want := []string{"-trimpath", "-gcflags=all=-dwarf=false", "-ldflags=-s -w -buildid="}; !slices.Equal(pl.Targets[0].BuildFlags, want) {
					return fmt.Sprintf("buildFlags %q, want %q", pl.Targets[0].BuildFlags, want)
				}
				return ""
			},
		},
		{
			// A second -ldflags or -tags would replace berth's (dropping
			// -s -w -buildid= and the stamp, or go.tags), and go list would
			// not see the tags.
			name: "go.flags' -ldflags follow berth's, their -tags join go.tags",
			mod: func(p *config.Project, in *plan.Inputs) {
				p.Go.Stamp = config.Stamp{Version: "example.com/v.V"}
				p.Go.Flags = []string{"-ldflags=-X main.a=1", "-v", "--tags", "osusergo,extra", "-ldflags", "-X 'main.b=two words'", "-gcflags=-N"}
			},
			check: func(pl *plan.Plan) string {
				ld := "-s -w -buildid= -X example.com/v.V=1.2.3+build.4 -X main.a=1 -X 'main.b=two words'"
				if pl.Targets[0].Ldflags != ld {
					return fmt.Sprintf("ldflags %q, want %q", pl.Targets[0].Ldflags, ld)
				}
				if want := []string{"netgo", "osusergo", "extra"}; !slices.Equal(pl.Go.Tags, want) {
					return fmt.Sprintf("tags %q, want %q", pl.Go.Tags, want)
				}
				if want := []string{"-v", "-gcflags=-N"}; !slices.Equal(pl.Go.Flags, want) {
					return fmt.Sprintf("flags %q, want %q", pl.Go.Flags, want)
				}
				want := []string{"-trimpath", "-gcflags=all=-dwarf=false", "-tags=netgo,osusergo,extra", "-v", "-gcflags=-N", "-ldflags=" + ld}
				if got := pl.Targets[0].BuildFlags; !slices.Equal(got, want) {
					return fmt.Sprintf("buildFlags %q, want %q", got, want)
				}
				return ""
			},
		},
		{
			// -w=false after berth's -s -w keeps the DWARF the compiler
			// writes: berth then does not tell it to skip it.
			name: "go.flags' linker flags that keep DWARF keep the compiler's",
			mod: func(p *config.Project, in *plan.Inputs) {
				p.Go.Flags = []string{"-ldflags=-w=false"}
			},
			check: func(pl *plan.Plan) string {
				got := pl.Targets[0].BuildFlags
				if slices.Contains(got, "-gcflags=all=-dwarf=false") || !strings.HasSuffix(got[len(got)-1], " -w=false") {
					return fmt.Sprintf("buildFlags %q, want no -dwarf=false and the ldflags ending in -w=false", got)
				}
				return ""
			},
		},
		{
			name: "config's go settings win over the environment",
			mod: func(p *config.Project, in *plan.Inputs) {
				p.Go.Proxy, p.Go.SumDB, p.Go.Private = "direct", "off", "example.com/*"
			},
			check: func(pl *plan.Plan) string {
				g := pl.Go
				if g.Proxy != "direct" || g.SumDB != "off" || g.Private != "example.com/*" {
					return fmt.Sprintf("go %+v", g)
				}
				return ""
			},
		},
		{
			name: "out dir",
			mod:  func(_ *config.Project, in *plan.Inputs) { in.OutDir = "out/x" },
			check: func(pl *plan.Plan) string {
				if pl.OutDir != "out/x" || pl.Targets[0].Paths.Binary != "out/x/bin/api/linux_arm_v7/api" || pl.Targets[0].Paths.Image != "out/x/oci" {
					return fmt.Sprintf("outDir %q, paths %+v", pl.OutDir, pl.Targets[0].Paths)
				}
				return ""
			},
		},
		{
			name: "description falls back to the name, labels in name order",
			mod:  func(*config.Project, *plan.Inputs) {},
			check: func(pl *plan.Plan) string {
				tg := pl.Targets[0]
				if tg.Description != "api" {
					return "description " + tg.Description
				}
				want := []plan.Label{
					{Name: "org.opencontainers.image.created", Value: "2023-11-14T22:13:20Z"},
					{Name: "org.opencontainers.image.description", Value: "api"},
					{Name: "org.opencontainers.image.revision", Value: "abc123"},
					{Name: "org.opencontainers.image.source", Value: "example.com/shop"},
					{Name: "org.opencontainers.image.title", Value: "api"},
					{Name: "org.opencontainers.image.version", Value: "1.2.3+build.4"},
				}
				if !reflect.DeepEqual(tg.Labels, want) {
					return fmt.Sprintf("labels %+v", tg.Labels)
				}
				if want := []string{"8080/tcp", "8443/udp"}; !slices.Equal(tg.Ports, want) {
					return fmt.Sprintf("ports %q", tg.Ports)
				}
				return ""
			},
		},
		{
			name: "cgo",
			mod: func(p *config.Project, _ *plan.Inputs) {
				p.Services[0].CGO = true
				p.Services[0].Builder = "example.com/gcc@sha256:" + strings.Repeat("0", 64)
			},
			check: func(pl *plan.Plan) string {
				tg := pl.Targets[0]
				if !tg.CGO || !slices.Contains(tg.BuildEnv, "CGO_ENABLED=1") || slices.Contains(tg.BuildEnv, "CGO_ENABLED=0") {
					return fmt.Sprintf("cgo %v, buildEnv %q", tg.CGO, tg.BuildEnv)
				}
				return ""
			},
		},
		{
			name:   "no Go version anywhere",
			mod:    func(p *config.Project, in *plan.Inputs) { p.Go.Version, in.GoVersion = "", "" },
			errMsg: "no Go version",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, in := project(), inputs()
			tc.mod(p, &in)
			pl, err := plan.New(p, in)
			if tc.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("error %v, want one containing %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(pl); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestNewDeterministic plans the same project twice, from fresh copies,
// and compares the JSON bytes: no map order may leak into a plan.
func TestNewDeterministic(t *testing.T) {
	many := func() *config.Project {
		p := project()
		for i := 0; i < 50; i++ {
			p.Services[0].Env = append(p.Services[0].Env, config.EnvVar{Name: fmt.Sprintf("V%02d", i), Value: fmt.Sprint(i)})
		}
		return p
	}
	var first []byte
	for i := 0; i < 5; i++ {
		pl, err := plan.New(many(), inputs())
		if err != nil {
			t.Fatal(err)
		}
		b, err := plan.JSON(pl)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b
			continue
		}
		if !bytes.Equal(b, first) {
			t.Fatalf("plan %d differs from the first:\n%s\n---\n%s", i, b, first)
		}
	}
}

// TestNewServiceOrderFromConfig plans a loaded config whose services are
// declared out of order: targets follow the sorted service names, and
// each service's platforms in the order written.
func TestNewServiceOrderFromConfig(t *testing.T) {
	l, err := config.NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := l.LoadSource("/cfg", map[string][]byte{"berth.cue": []byte(`package berth
project: "p"
go: version: "1.26.8"
services: {
	zeta: {main: "./z", platforms: ["linux/arm64", "linux/amd64"]}
	alpha: {main: "./a", platforms: ["windows/amd64", "linux/arm/v6"], outputs: {image: false, systemd: false, dockerfile: false}}
	mid: main: "./m"
}
`)})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := plan.New(cfg, plan.Inputs{ConfigDir: "/cfg"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alpha windows/amd64", "alpha linux/arm/v6", "mid linux/amd64", "zeta linux/arm64", "zeta linux/amd64"}
	if got := targetNames(pl); !slices.Equal(got, want) {
		t.Errorf("targets = %q, want %q", got, want)
	}
	if want := []string{"alpha", "mid", "zeta"}; !slices.Equal(pl.Services, want) {
		t.Errorf("services = %q, want %q", pl.Services, want)
	}
}
