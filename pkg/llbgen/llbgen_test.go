package llbgen

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/plan"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testPlan loads an example config from memory and plans it with fixed
// inputs, so the graph depends on nothing but the code.
func testPlan(t *testing.T, example string) *plan.Plan {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("../../examples", example, "berth.cue"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := config.NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := l.LoadSource("/project", map[string][]byte{"berth.cue": src})
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(cfg, plan.Inputs{
		ModuleDir: ".", ModulePath: "example.com/" + example, GoVersion: "1.26.8",
		Revision: "0123456789abcdef", SourceDateEpoch: 1700000000, ConfigDir: "/project",
		GOPROXY: "https://proxy.golang.org,direct", GOSUMDB: "sum.golang.org",
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testEnv(p *plan.Plan, pkgs Packages) Env {
	return Env{
		Plan:      p,
		Builder:   ocispecs.Platform{OS: "linux", Architecture: "amd64"},
		Context:   llb.Local("context", llb.SharedKeyHint("test-context")),
		Toolchain: llb.Local("goroot", llb.SharedKeyHint("test-goroot")),
		Packages:  pkgs,
		Sources:   map[string]*llb.SourceMap{"./berth.cue": llb.NewSourceMap(nil, "./berth.cue", "cue", []byte("project: \"x\"\n"))},
		Static:    llb.Local("static"),
	}
}

// dump writes a definition op by op, as buildctl debug dump-llb does: the
// digest, the op as JSON, its metadata; inputs refer to digests.
func dump(t *testing.T, def *llb.Definition) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		dgst := digest.FromBytes(dt)
		js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&op)
		if err != nil {
			t.Fatal(err)
		}
		var norm bytes.Buffer
		if err := json.Indent(&norm, js, "", "  "); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s\n%s\n", dgst, norm.String())
		if md, ok := def.Metadata[dgst]; ok && md.Description != nil {
			fmt.Fprintf(&b, "description: %v\n", md.Description)
		}
	}
	return b.Bytes()
}

// execOps are the exec ops of a definition.
func execOps(t *testing.T, def *llb.Definition) []*pb.Op {
	t.Helper()
	var out []*pb.Op
	for _, dt := range def.Def {
		op := &pb.Op{}
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if op.GetExec() != nil {
			out = append(out, op)
		}
	}
	return out
}

// opsByDigest decodes every op of a definition, by digest.
func opsByDigest(t *testing.T, def *llb.Definition) map[digest.Digest]*pb.Op {
	t.Helper()
	out := map[digest.Digest]*pb.Op{}
	for _, dt := range def.Def {
		op := &pb.Op{}
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		out[digest.FromBytes(dt)] = op
	}
	return out
}

// graphDef generates env's graph and marshals all its targets as one
// definition.
func graphDef(t *testing.T, env Env) *llb.Definition {
	t.Helper()
	g, err := Generate(env)
	if err != nil {
		t.Fatal(err)
	}
	def, err := llb.Merge(graphStates(g)).Marshal(context.Background(), llb.LocalUniqueID("x"))
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test -update and review the diff", path)
	}
}

func TestGoldenLLB(t *testing.T) {
	for _, tc := range []struct {
		name    string
		example string
		pkgs    Packages
	}{
		{"hello", "hello", Packages{}},
		{"monorepo", "monorepo", Packages{
			Include: map[string][]string{
				"api": {"cmd/api/main.go", "internal/shop/shop.go"}, "worker": {"cmd/worker/main.go", "internal/shop/shop.go"},
				"gateway": {"cmd/gateway/main.go", "internal/shop/shop.go"}, "admin": {"cmd/admin/main.go", "internal/shop/shop.go"},
				"shopctl": {"cmd/shopctl/main.go", "internal/shop/shop.go"},
			},
			Std:         map[string][]string{"linux/amd64": {"fmt", "net/http", "os"}, "linux/arm64": {"fmt", "os"}},
			Shared:      map[string][]string{"linux/amd64": {"example.com/shop/internal/shop"}, "linux/arm64": {"example.com/shop/internal/shop"}},
			SharedFiles: []string{"internal/shop/shop.go"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan(t, tc.example)
			g, err := Generate(testEnv(p, tc.pkgs))
			if err != nil {
				t.Fatal(err)
			}
			var all bytes.Buffer
			for _, tg := range g.Targets {
				st := tg.Binary
				kind := "binary"
				if tg.Image != nil {
					st, kind = tg.Image.State, "image"
				}
				def, err := st.Marshal(context.Background(), llb.LocalUniqueID("golden"))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&all, "### %s %s %s\n", tg.Plan.Service, tg.Plan.Platform, kind)
				all.Write(dump(t, def))
				if tg.Image != nil {
					cfg, _ := json.MarshalIndent(tg.Image.Config, "", "  ")
					fmt.Fprintf(&all, "### config\n%s\n", cfg)
				}
			}
			golden(t, tc.name+".llb", all.Bytes())
		})
	}
}

// The properties the graph must have, whatever its exact bytes.
func TestGraphProperties(t *testing.T) {
	p := testPlan(t, "monorepo")
	g, err := Generate(testEnv(p, Packages{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range g.Targets {
		def, err := tg.Binary.Marshal(context.Background(), llb.LocalUniqueID("x"))
		if err != nil {
			t.Fatal(err)
		}
		var compile *pb.ExecOp
		var download *pb.ExecOp
		for _, op := range execOps(t, def) {
			e := op.GetExec()
			args := strings.Join(e.Meta.Args, " ")
			switch {
			case strings.Contains(args, " build ") && strings.Contains(args, " -o "):
				compile = e
				if op.Platform.Architecture != "amd64" || op.Platform.OS != "linux" {
					t.Errorf("%s: compile runs on %v, want the builder's platform (no QEMU)", tg.Plan.Platform, op.Platform)
				}
			case strings.Contains(args, "mod download"):
				download = e
			}
		}
		if compile == nil || download == nil {
			t.Fatalf("%s %s: no compile or download step", tg.Plan.Service, tg.Plan.Platform)
		}
		env := strings.Join(compile.Meta.Env, " ")
		for _, want := range []string{"CGO_ENABLED=0", "GOOS=" + tg.Plan.GOOS, "GOARCH=" + tg.Plan.GOARCH, "GOFLAGS=-mod=readonly"} {
			if !strings.Contains(env, want) {
				t.Errorf("%s %s: compile env lacks %s", tg.Plan.Service, tg.Plan.Platform, want)
			}
		}
		args := strings.Join(compile.Meta.Args, " ")
		if !strings.Contains(args, "-trimpath") || !strings.Contains(args, "-buildid=") {
			t.Errorf("compile args %q", args)
		}
		if compile.Network != pb.NetMode_NONE {
			t.Errorf("compile has network %v, want none", compile.Network)
		}
		var cache bool
		for _, m := range compile.Mounts {
			if m.Dest == BuildCache && m.MountType == pb.MountType_CACHE {
				cache = true
			}
			if m.Dest == GOROOT && !m.Readonly {
				t.Error("toolchain mounted writable")
			}
		}
		if !cache {
			t.Error("no build cache mount")
		}
	}
}

// A toolchain by digest needs no content hash of its files; a local one
// does (its cache key names the session), and so do the other mounts.
func TestToolchainContentCache(t *testing.T) {
	p := testPlan(t, "monorepo")
	for _, pinned := range []bool{false, true} {
		env := testEnv(p, Packages{})
		env.ToolchainPinned = pinned
		execs := execOps(t, graphDef(t, env))
		for _, op := range execs {
			e := op.GetExec()
			toolchain := false
			for _, m := range e.Mounts {
				want := pb.MountContentCache_DEFAULT
				if m.Dest == GOROOT {
					toolchain = true
					if pinned {
						want = pb.MountContentCache_OFF
					}
				}
				if m.ContentCache != want {
					t.Errorf("pinned=%v: %q mounts %s with content cache %v, want %v", pinned, e.Meta.Args, m.Dest, m.ContentCache, want)
				}
			}
			if !toolchain {
				t.Errorf("%q does not mount the toolchain", e.Meta.Args)
			}
		}
		if len(execs) < 3 {
			t.Fatalf("pinned=%v: %d exec steps, want the download, std and compiles", pinned, len(execs))
		}
	}
}

// Packages two services share are compiled once per platform, in a step
// between the standard library's and the services', which wait on it.
func TestSharedPackagesStep(t *testing.T) {
	p := testPlan(t, "monorepo")
	const shop = "example.com/shop/internal/shop"
	g, err := Generate(testEnv(p, Packages{
		Std:         map[string][]string{"linux/amd64": {"fmt"}, "linux/arm64": {"fmt"}},
		Shared:      map[string][]string{"linux/amd64": {shop}},
		SharedFiles: []string{"internal/shop/shop.go"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	sharedSteps := map[digest.Digest]bool{}
	for _, tg := range g.Targets {
		def, err := tg.Binary.Marshal(context.Background(), llb.LocalUniqueID("x"))
		if err != nil {
			t.Fatal(err)
		}
		ops := opsByDigest(t, def)
		var compile *pb.Op
		for _, op := range ops {
			if e := op.GetExec(); e != nil && strings.Contains(strings.Join(e.Meta.Args, " "), " -o ") {
				compile = op
			}
		}
		gate := func(op *pb.Op) (digest.Digest, *pb.Op) {
			for _, m := range op.GetExec().Mounts {
				if m.Dest == "/.berth-std" {
					if m.Input < 0 {
						return "", nil // scratch: nothing to wait on
					}
					d := digest.Digest(op.Inputs[m.Input].Digest)
					return d, ops[d]
				}
			}
			t.Fatalf("%s %s: %q mounts no gate", tg.Plan.Service, tg.Plan.Platform, op.GetExec().Meta.Args)
			return "", nil
		}
		d, g := gate(compile)
		var args string
		if g != nil {
			args = strings.Join(g.GetExec().Meta.Args, " ")
		}
		switch tg.Plan.Platform {
		case "linux/amd64":
		case "linux/arm64":
			if !strings.HasSuffix(args, " fmt") {
				t.Errorf("%s %s waits on %q, want the standard library's step", tg.Plan.Service, tg.Plan.Platform, args)
			}
			continue
		default:
			if g != nil {
				t.Errorf("%s %s waits on %q, want nothing", tg.Plan.Service, tg.Plan.Platform, args)
			}
			continue
		}
		sharedSteps[d] = true
		if !strings.HasSuffix(args, " "+shop) || strings.Contains(args, "-ldflags") || strings.Contains(args, " -o ") {
			t.Errorf("%s: the shared step runs %q", tg.Plan.Service, args)
		}
		if e := g.GetExec(); e.Network != pb.NetMode_NONE || e.Meta.Cwd != SrcDir {
			t.Errorf("shared step: network %v, cwd %s", e.Network, e.Meta.Cwd)
		}
		if _, std := gate(g); !strings.HasSuffix(strings.Join(std.GetExec().Meta.Args, " "), " fmt") {
			t.Errorf("the shared step waits on %q, want the standard library's step", std.GetExec().Meta.Args)
		}
	}
	if len(sharedSteps) != 1 {
		t.Errorf("%d shared steps for linux/amd64, want 1", len(sharedSteps))
	}
}

// On an engine whose cores berth knows, the standard-library steps run at
// most one per core at once, each waiting for the step a lane before it,
// with GOMAXPROCS its share of the cores; not known, all side by side at
// go's default. The shared steps get the same GOMAXPROCS.
func TestStdLanes(t *testing.T) {
	p := testPlan(t, "monorepo")
	pkgs := Packages{
		Std:         map[string][]string{"linux/amd64": {"fmt"}, "linux/arm64": {"os"}, "linux/arm/v7": {"net"}},
		Shared:      map[string][]string{"linux/amd64": {"./internal/shop"}, "linux/arm64": {"./internal/shop"}, "linux/arm/v7": {"./internal/shop"}},
		SharedFiles: []string{"internal/shop/*.go"},
	}
	// The plan names linux/amd64, linux/arm64, linux/arm/v7 first in that
	// order (api's platforms).
	for _, c := range []struct {
		cores int
		procs map[string]string // GOARCH → GOMAXPROCS of its std and shared steps; "" for none
		waits map[string]string // std step's package → the one it waits for
	}{
		{cores: 0, procs: map[string]string{"amd64": "", "arm64": "", "arm": ""}, waits: map[string]string{}},
		{cores: 1, procs: map[string]string{"amd64": "1", "arm64": "1", "arm": "1"}, waits: map[string]string{"os": "fmt", "net": "os"}},
		{cores: 2, procs: map[string]string{"amd64": "1", "arm64": "1", "arm": "1"}, waits: map[string]string{"net": "fmt"}},
		{cores: 3, procs: map[string]string{"amd64": "1", "arm64": "1", "arm": "1"}, waits: map[string]string{}},
		{cores: 4, procs: map[string]string{"amd64": "2", "arm64": "1", "arm": "1"}, waits: map[string]string{}},
		{cores: 12, procs: map[string]string{"amd64": "4", "arm64": "4", "arm": "4"}, waits: map[string]string{}},
	} {
		env := testEnv(p, pkgs)
		env.Cores = c.cores
		stdOf := map[digest.Digest]string{} // std step → its package
		waits := map[string]digest.Digest{}
		shared := 0
		for d, op := range opsByDigest(t, graphDef(t, env)) {
			e := op.GetExec()
			if e == nil || len(e.Meta.Args) < 3 || e.Meta.Args[1] != "build" {
				continue
			}
			procs, arch := "", ""
			for _, kv := range e.Meta.Env {
				if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
					procs = v
				}
				if v, ok := strings.CutPrefix(kv, "GOARCH="); ok {
					arch = v
				}
			}
			if slices.Contains(e.Meta.Args, "-o") { // a service's step: go's default
				if procs != "" {
					t.Errorf("cores=%d: %q has GOMAXPROCS %q, want none", c.cores, e.Meta.Args, procs)
				}
				continue
			}
			if want := c.procs[arch]; procs != want {
				t.Errorf("cores=%d: %q (%s) has GOMAXPROCS %q, want %q", c.cores, e.Meta.Args, arch, procs, want)
			}
			if e.Meta.Cwd != "/" {
				shared++
				continue
			}
			pkg := e.Meta.Args[len(e.Meta.Args)-1]
			stdOf[d] = pkg
			for _, m := range e.Mounts {
				if m.Dest == "/.berth-after" {
					waits[pkg] = digest.Digest(op.Inputs[m.Input].Digest)
				}
			}
		}
		if len(stdOf) != 3 || shared != 3 {
			t.Fatalf("cores=%d: %d standard-library and %d shared steps, want 3 and 3", c.cores, len(stdOf), shared)
		}
		got := map[string]string{}
		for pkg, d := range waits {
			got[pkg] = stdOf[d]
		}
		if !reflect.DeepEqual(got, c.waits) {
			t.Errorf("cores=%d: std steps wait on %v, want %v", c.cores, got, c.waits)
		}
	}
}

// The standard-library steps run their go command and compiles with the
// collector off below 1 GiB when their GOMAXPROCS is 1; at more, or on an
// engine whose cores are not known, and in the shared and services' steps,
// go's default.
func TestStdGC(t *testing.T) {
	pkgs := Packages{
		Std:         map[string][]string{"linux/amd64": {"fmt"}, "linux/arm64": {"os"}, "linux/arm/v7": {"net"}},
		Shared:      map[string][]string{"linux/amd64": {"./internal/shop"}, "linux/arm64": {"./internal/shop"}, "linux/arm/v7": {"net"}},
		SharedFiles: []string{"internal/shop/*.go"},
	}
	gcEnv := func(e *pb.ExecOp) []string {
		var out []string
		for _, kv := range e.Meta.Env {
			if strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
				out = append(out, kv)
			}
		}
		return out
	}
	// 3 platforms: on 4 cores linux/amd64's step gets 2, the others 1.
	for _, cores := range []int{0, 2, 4, 12} {
		env := testEnv(testPlan(t, "monorepo"), pkgs)
		env.Cores = cores
		std := 0
		for _, op := range execOps(t, graphDef(t, env)) {
			e := op.GetExec()
			if len(e.Meta.Args) < 3 || e.Meta.Args[1] != "build" {
				continue
			}
			var want []string
			if e.Meta.Cwd == "/" { // a standard-library step
				std++
				if slices.Contains(e.Meta.Env, "GOMAXPROCS=1") {
					want = []string{"GOGC=off", "GOMEMLIMIT=1GiB"}
				}
			}
			if got := gcEnv(e); !slices.Equal(got, want) {
				t.Errorf("cores=%d: %q (env %q) has %q, want %q", cores, e.Meta.Args, e.Meta.Env, got, want)
			}
		}
		if std != 3 {
			t.Errorf("cores=%d: %d standard-library steps, want 3", cores, std)
		}
	}
}
