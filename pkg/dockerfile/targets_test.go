package dockerfile

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var info = RenderInfo{Project: "shop", Version: "1.4.2", GoVersion: "1.26.8", ModuleDir: ".", OutDir: "dist"}

const ldflags = "-s -w -buildid= -X example.com/shop/internal/shop.Version=1.4.2"

// example is one service's targets; name is its golden file's base name.
type example struct {
	name    string
	targets []plan.Target
	info    RenderInfo
}

// svc is a service as declared, before the planner resolves platforms.
type svc struct {
	name, desc, base, builder string
	line                      int
	platforms, args, ports    []string
	limits                    plan.Limits
	env                       []plan.EnvVar
	user, group               int
	flags                     []string
}

// examples mirror examples/monorepo as the planner resolves it, plus a
// service on a pinned base with its own builder and user, and one whose
// values need every kind of quoting.
func examples() []example {
	all := []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}
	small := plan.Limits{CPU: 1, Memory: 134217728, NoFile: 4096, Tasks: 64}
	pinned := "example.com/base/distroless@sha256:" + strings.Repeat("ab", 32)
	builder := "example.com/golang@sha256:" + strings.Repeat("cd", 32)
	return []example{
		{"api", svc{name: "api", desc: "Shop HTTP API", base: "static", line: 20, platforms: all,
			args: []string{"--listen=:8080"}, ports: []string{"8080/tcp"},
			limits: plan.Limits{CPU: 1.5, Memory: 268435456, NoFile: 65536, Tasks: 512},
			env:    envs("GOMAXPROCS", "2", "GOMEMLIMIT", "230MiB", "LOG_LEVEL", "info")}.targets(), info},
		{"worker", svc{name: "worker", desc: "Background jobs", base: "static", line: 27, platforms: all, limits: small,
			env: envs("GOMAXPROCS", "1", "GOMEMLIMIT", "115MiB", "LOG_LEVEL", "debug", "QUEUE", "orders")}.targets(), info},
		{"gateway", svc{name: "gateway", desc: "Edge gateway", base: "static", line: 33, platforms: all,
			ports:  []string{"443/tcp", "8443/udp"},
			limits: plan.Limits{CPU: 1, Memory: 67108864, NoFile: 4096, Tasks: 64},
			env:    envs("GOMAXPROCS", "1", "GOMEMLIMIT", "57MiB", "LOG_LEVEL", "info")}.targets(), info},
		{"admin", svc{name: "admin", desc: "Admin console", base: "scratch", line: 39,
			platforms: []string{"linux/amd64"}, limits: small,
			env: envs("GOMAXPROCS", "1", "GOMEMLIMIT", "115MiB", "LOG_LEVEL", "info")}.targets(), info},
		{"pinned", svc{name: "pinned", desc: "Pinned base", base: pinned, builder: builder, line: 50,
			platforms: []string{"linux/amd64", "linux/arm64"}, user: 1000, group: 1001,
			ports: []string{"9000/tcp"}, flags: []string{"-tags=netgo", "-v"}}.targets(), info},
		{"quoting", svc{
			name:      "quoting",
			desc:      `it's "quoted" $HOME \ 100%`,
			base:      "static",
			line:      60,
			platforms: []string{"linux/arm/v6", "linux/amd64"},
			args:      []string{"a b", "it's", `say "hi"`, "$HOME", `back\slash`, "", "<<EOF", "[x]", "héllo"},
			ports:     []string{"8080/tcp"},
			limits:    plan.Limits{CPU: 0.25, Memory: 1000},
			env:       envs("A", "", "B", "two words", "C", `q"uo'te`, "D", `$HOME \ ${X}`, "E", "`id`", "ZONEINFO", "/tz.zip"),
			flags:     []string{"-gcflags=all=-N -l", "-ldflags=-X 'main.v=it''s'"},
		}.targets(), RenderInfo{
			Project: "shop", Version: "1.4.2+build.1", GoVersion: "1.26.8",
			GoImage: "golang:1.26.8-bookworm", ModuleDir: "../my module",
		}},
	}
}

// targets resolves s the way plan.New does.
func (s svc) targets() []plan.Target {
	var ts []plan.Target
	for _, pf := range s.platforms {
		parts := strings.Split(pf, "/")
		t := plan.Target{
			Service: s.name, Platform: pf, GOOS: parts[0], GOARCH: parts[1],
			Main: "./cmd/" + s.name, BinaryName: s.name, Base: s.base, Builder: s.builder,
			User: s.user, Group: s.group, Description: s.desc,
			Args: nonNil(s.args), Env: s.env, Ports: nonNil(s.ports), Limits: s.limits,
			Ldflags: ldflags,
			Outputs: plan.Outputs{Image: true, Binary: true, Systemd: true, Dockerfile: true},
			Paths: plan.Paths{
				Binary:     "dist/bin/" + s.name + "/" + strings.ReplaceAll(pf, "/", "_") + "/" + s.name,
				Image:      "dist/oci",
				ImageRef:   s.name + ":1.4.2",
				Dockerfile: "dist/docker/" + s.name + "/Dockerfile",
				Unit:       "dist/systemd/" + s.name + ".service",
			},
			Source: diag.Range{
				Start: diag.Pos{File: "./berth.cue", Line: s.line, Col: 2},
				End:   diag.Pos{File: "./berth.cue", Line: s.line + 5, Col: 3},
			},
		}
		if t.User == 0 && t.Group == 0 {
			t.User, t.Group = NonrootID, NonrootID
		}
		if t.Env == nil {
			t.Env = []plan.EnvVar{}
		}
		if len(parts) == 3 {
			t.GOARM = strings.TrimPrefix(parts[2], "v")
		}
		t.BuildEnv = []string{"CGO_ENABLED=0", "GOARCH=" + t.GOARCH, "GOFLAGS=-mod=readonly", "GOOS=linux",
			"GOPROXY=https://proxy.golang.org,direct", "GOSUMDB=sum.golang.org", "GOTOOLCHAIN=local"}
		if t.GOARM != "" {
			t.BuildEnv = append(t.BuildEnv, "GOARM="+t.GOARM)
		}
		sort.Strings(t.BuildEnv)
		t.BuildFlags = append(append([]string{"-trimpath"}, s.flags...), "-ldflags="+ldflags)
		t.Command = append(append([]string{"go", "build"}, t.BuildFlags...), "-o", t.Paths.Binary, t.Main)
		t.Labels = []plan.Label{
			{Name: "org.opencontainers.image.created", Value: "2026-11-25T09:14:39Z"},
			{Name: "org.opencontainers.image.description", Value: s.desc},
			{Name: "org.opencontainers.image.revision", Value: "247b7f23597d0e409c50b660d62c9a02fe56eca0"},
			{Name: "org.opencontainers.image.source", Value: "example.com/shop"},
			{Name: "org.opencontainers.image.title", Value: s.name},
			{Name: "org.opencontainers.image.version", Value: "1.4.2"},
		}
		ts = append(ts, t)
	}
	return ts
}

func envs(kv ...string) []plan.EnvVar {
	var e []plan.EnvVar
	for i := 0; i < len(kv); i += 2 {
		e = append(e, plan.EnvVar{Name: kv[i], Value: kv[i+1]})
	}
	return e
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output (run go test -update and read the diff):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}
