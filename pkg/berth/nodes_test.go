package berth

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/plan"
)

func TestIsPlatformBuilder(t *testing.T) {
	for _, tc := range []struct {
		in, pf, addr string
		ok           bool
	}{
		{"linux/arm64=tcp://arm:1234", "linux/arm64", "tcp://arm:1234", true},
		{"linux/arm/v7=ssh://me@pi", "linux/arm/v7", "ssh://me@pi", true},
		{"tcp://host:1234", "", "", false},
		{"kube-pod://buildkitd?namespace=ci", "", "", false},
		{"docker", "", "", false},
		{"linux/arm64=", "", "", false},
	} {
		pf, addr, ok := IsPlatformBuilder(tc.in)
		if pf != tc.pf || addr != tc.addr || ok != tc.ok {
			t.Errorf("IsPlatformBuilder(%q) = %q, %q, %v", tc.in, pf, addr, ok)
		}
	}
}

func nodesProject(builders map[string]config.Builder) *Project {
	p := &plan.Plan{}
	for _, pf := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		p.Targets = append(p.Targets, plan.Target{Service: "api", Platform: pf})
	}
	return &Project{Plan: p, Config: &config.Project{Dir: "/proj", Builders: builders}}
}

func describe(nodes []*node) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, n.opts.Builder+"["+strings.Join(n.pfs, " ")+"]"+n.opts.TLSCACert)
	}
	return strings.Join(parts, "; ")
}

// Which builder builds which platform: flags over BUILDKIT_HOST over the
// config, platforms with one builder sharing a node.
func TestPlanNodes(t *testing.T) {
	cfg := map[string]config.Builder{
		"default":     {Address: "tcp://cfg-default:1"},
		"linux/arm64": {Address: "tcp://cfg-arm64:1", CACert: "certs/ca.pem"},
	}
	env := func(host string) Env {
		return func(k string) string {
			if k == "BUILDKIT_HOST" {
				return host
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name     string
		cfg      map[string]config.Builder
		def      string
		host     string
		builders map[string]string
		want     string
	}{
		{"embedded", nil, "", "", nil, "[linux/amd64 linux/arm/v7 linux/arm64]"},
		{"config", cfg, "", "", nil, "tcp://cfg-default:1[linux/amd64 linux/arm/v7]; tcp://cfg-arm64:1[linux/arm64]/proj/certs/ca.pem"},
		{"BUILDKIT_HOST over the config's default", cfg, "", "tcp://env:1", nil, "[linux/amd64 linux/arm/v7]; tcp://cfg-arm64:1[linux/arm64]/proj/certs/ca.pem"},
		{"flag over the config", cfg, "tcp://flag:1", "", map[string]string{"linux/arm64": "tcp://flag-arm:1"}, "tcp://flag:1[linux/amd64 linux/arm/v7]; tcp://flag-arm:1[linux/arm64]"},
		{"same builder, one node", nil, "tcp://a:1", "", map[string]string{"linux/arm64": "tcp://a:1"}, "tcp://a:1[linux/amd64 linux/arm/v7 linux/arm64]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := BuildOptions{Options: Options{Env: env(tc.host)}, Engine: engine.Options{Builder: tc.def}, Builders: tc.builders}
			p := nodesProject(tc.cfg)
			nodes, err := planNodes(o, p, p.Plan.Targets)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(nodes); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	p := nodesProject(nil)
	_, err := planNodes(BuildOptions{Builders: map[string]string{"linux/s390x": "tcp://z:1"}}, p, p.Plan.Targets)
	if err == nil || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("a builder for a platform not in the plan: %v", err)
	}
	_, err = planNodes(BuildOptions{Engine: engine.Options{Builder: "docker"}, Builders: map[string]string{"linux/arm64": "tcp://a:1"}}, p, p.Plan.Targets)
	if err == nil {
		t.Error("the Docker engine was accepted as one of several builders")
	}
	// A builder is checked against the whole plan, not the platforms
	// this build chose: the same flags work for every --platform.
	amd64, err := selectTargets(p.Plan, nil, []string{"linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := planNodes(BuildOptions{Builders: map[string]string{"linux/arm64": "tcp://a:1"}}, p, amd64.Targets)
	if err != nil {
		t.Fatalf("a builder for a platform this build leaves out: %v", err)
	}
	if got := describe(nodes); got != "[linux/amd64]" {
		t.Errorf("a --platform linux/amd64 build has nodes %s", got)
	}
	// What the Docker engine's BuildKit cannot do is refused before
	// anything is built, not skipped and reported done.
	for _, o := range []BuildOptions{
		{Push: "127.0.0.1:5000/x"}, {OCIArchive: true}, {DockerArchive: true},
	} {
		o.Engine.Builder = "docker"
		if _, err := planNodes(o, p, p.Plan.Targets); err == nil || !strings.Contains(err.Error(), "--builder docker") {
			t.Errorf("%+v on the Docker engine: %v", o, err)
		}
	}
}

// With several builders, each one's cache goes to a place of its own.
func TestNodeCache(t *testing.T) {
	arm := &node{pfs: []string{"linux/arm64"}}
	b := &builder{nodes: []*node{{pfs: []string{"linux/amd64"}}, arm}}
	in := []client.CacheOptionsEntry{
		{Type: "registry", Attrs: map[string]string{"ref": "localhost:5000/shop/cache", "mode": "max"}},
		{Type: "registry", Attrs: map[string]string{"ref": "localhost:5000/shop/cache:main"}},
		{Type: "local", Attrs: map[string]string{"dest": "/tmp/cache"}},
	}
	got, err := b.nodeCache(arm, in, "dest")
	if err != nil {
		t.Fatal(err)
	}
	want := []client.CacheOptionsEntry{
		{Type: "registry", Attrs: map[string]string{"ref": "localhost:5000/shop/cache:linux-arm64", "mode": "max"}},
		{Type: "registry", Attrs: map[string]string{"ref": "localhost:5000/shop/cache:main-linux-arm64"}},
		{Type: "local", Attrs: map[string]string{"dest": "/tmp/cache/linux-arm64"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	if in[0].Attrs["ref"] != "localhost:5000/shop/cache" {
		t.Error("the build's own entries were changed")
	}
	if _, err := b.nodeCache(arm, []client.CacheOptionsEntry{{Type: "gha", Attrs: map[string]string{}}}, "dest"); err == nil {
		t.Error("gha cache accepted with several builders")
	}
	// An import that cannot be split fails the build, as an export does.
	b.cacheFrom = []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": "localhost:5000/shop/cache@sha256:" + strings.Repeat("a", 64)}}}
	if err := b.checkCaches(); err == nil || !strings.HasPrefix(err.Error(), "--cache-from: ") {
		t.Errorf("a cache import by digest with several builders: %v", err)
	}
	one := &builder{nodes: []*node{arm}}
	if got, _ := one.nodeCache(arm, in, "dest"); !reflect.DeepEqual(got, in) {
		t.Error("with one builder the entries must stay as given")
	}
}
