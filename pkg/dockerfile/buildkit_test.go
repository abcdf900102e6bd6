package dockerfile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/plan"
)

// stubResolver answers BuildKit's image lookups without a registry: every
// image is a one-layer linux image of the platform asked for.
type stubResolver struct{}

func (stubResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	p := platforms.DefaultSpec()
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		p = *opt.ImageOpt.Platform
	}
	img := ocispecs.Image{
		Platform: p,
		RootFS:   ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString(ref)}},
		Config:   ocispecs.ImageConfig{Env: []string{"PATH=/usr/local/go/bin:/usr/bin:/bin"}},
	}
	dt, err := json.Marshal(img)
	if err != nil {
		return "", "", nil, err
	}
	dgst := digest.FromBytes(dt)
	if _, d, ok := strings.Cut(ref, "@"); ok {
		dgst = digest.Digest(d)
	}
	return ref, dgst, dt, nil
}

// TestBuildKit converts every example with BuildKit's own Dockerfile
// frontend, for each of its platforms, and requires no lint warning (with
// the experimental rules too), an LLB definition, and an image config that
// says what the target says.
func TestBuildKit(t *testing.T) {
	ctx := context.Background()
	for _, ex := range examples() {
		t.Run(ex.name, func(t *testing.T) {
			dt, err := Render(ex.targets, ex.info)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parser.Parse(bytes.NewReader(dt)); err != nil {
				t.Fatalf("parse: %v", err)
			}

			// The lint-only path checks every stage; enable the
			// experimental rules with a check directive in front.
			lintDt := append([]byte("# check=experimental=all\n"), dt...)
			res, err := dockerfile2llb.DockerfileLint(ctx, lintDt, dockerfile2llb.ConvertOpt{
				MetaResolver: stubResolver{},
				SourceMap:    sourceMap(t, lintDt),
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Error != nil {
				t.Errorf("lint error: %s", res.Error.Message)
			}
			for _, w := range res.Warnings {
				t.Errorf("lint warning %s: %s (line %v)", w.RuleName, w.Detail, w.Location)
			}

			for _, tg := range ex.targets {
				out := convert(t, dt, tg.Platform)
				def, err := out.State.Marshal(ctx)
				if err != nil || len(def.Def) == 0 {
					t.Fatalf("%s: marshal LLB: %v", tg.Platform, err)
				}
				checkImage(t, tg, out.Image.Config.ImageConfig)
			}
		})
	}
}

// convert converts dt for one platform with BuildKit's Dockerfile
// frontend, failing on any lint warning.
func convert(t *testing.T, dt []byte, platform string) *dockerfile2llb.Result {
	t.Helper()
	pf, err := platforms.Parse(platform)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	out, err := dockerfile2llb.Dockerfile2LLB(context.Background(), dt, dockerfile2llb.ConvertOpt{
		MetaResolver:   stubResolver{},
		TargetPlatform: &pf,
		SourceMap:      sourceMap(t, dt),
		Warn: func(rule, _, _, msg string, loc []parser.Range) {
			warnings = append(warnings, fmt.Sprintf("%s: %s %v", rule, msg, loc))
		},
	})
	if err != nil {
		t.Fatalf("%s: %v", platform, err)
	}
	for _, w := range warnings {
		t.Errorf("%s: lint warning %s", platform, w)
	}
	return out
}

// sourceMap is the Dockerfile as a source with its definition set, as
// BuildKit's dockerui makes it: DockerfileLint reads the definition.
func sourceMap(t *testing.T, dt []byte) *llb.SourceMap {
	t.Helper()
	st := llb.Local("dockerfile")
	def, err := st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sm := llb.NewSourceMap(&st, "Dockerfile", "Dockerfile", dt)
	sm.Definition = def
	return sm
}

// checkImage compares the image config BuildKit derived from the
// Dockerfile with the target.
func checkImage(t *testing.T, tg plan.Target, c ocispecs.ImageConfig) {
	t.Helper()
	if want := fmt.Sprintf("%d:%d", tg.User, tg.Group); c.User != want {
		t.Errorf("%s: User %q, want %q", tg.Platform, c.User, want)
	}
	if want := []string{ImagePath(tg.BinaryName)}; !reflect.DeepEqual(c.Entrypoint, want) {
		t.Errorf("%s: Entrypoint %q, want %q", tg.Platform, c.Entrypoint, want)
	}
	wantCmd := tg.Args
	if len(wantCmd) == 0 {
		wantCmd = nil
	}
	if !reflect.DeepEqual(c.Cmd, wantCmd) {
		t.Errorf("%s: Cmd %q, want %q", tg.Platform, c.Cmd, wantCmd)
	}
	var want []string
	for _, e := range imageEnv(tg) {
		want = append(want, e.Name+"="+e.Value)
	}
	if got := sorted(c.Env); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: Env %q, want %q", tg.Platform, got, want)
	}
	labels := map[string]string{}
	for _, l := range tg.Labels {
		labels[l.Name] = l.Value
	}
	if !reflect.DeepEqual(c.Labels, labels) {
		t.Errorf("%s: Labels %q, want %q", tg.Platform, c.Labels, labels)
	}
	ports := map[string]struct{}{}
	for _, p := range tg.Ports {
		ports[p] = struct{}{}
	}
	if len(ports) == 0 {
		ports = nil
	}
	if !reflect.DeepEqual(c.ExposedPorts, ports) {
		t.Errorf("%s: ExposedPorts %v, want %v", tg.Platform, c.ExposedPorts, ports)
	}
}

func sorted(s []string) []string {
	s = append([]string{}, s...)
	sort.Strings(s)
	return s
}
