package berth

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

// A builder's images go into a solve per platform, in the order the
// platforms first appear, each into a store named by its platform
// whatever else the build holds, so that a build of fewer platforms does
// not move the others' blobs.
func TestImageUnitsPerPlatform(t *testing.T) {
	target := func(svc, pf string) llbgen.Target {
		os, arch, _ := strings.Cut(pf, "/")
		return llbgen.Target{
			Plan: &plan.Target{Service: svc, Platform: pf},
			Image: &llbgen.Image{
				State:    llb.Scratch().File(llb.Mkfile("/"+svc, 0o755, []byte(svc+" "+pf))),
				Platform: ocispecs.Platform{OS: os, Architecture: arch},
			},
		}
	}
	units := func(targets ...llbgen.Target) [][]string {
		t.Helper()
		dir := t.TempDir()
		b := &builder{
			proj:     &Project{Module: &Module{Dir: dir}},
			nodes:    []*node{{pfs: []string{"linux/amd64", "linux/arm64"}, graph: &llbgen.Graph{Targets: targets}}},
			outDir:   filepath.Join(dir, "dist"),
			cacheDir: filepath.Join(dir, "cache"),
		}
		us, err := b.imageUnits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		stores := map[string]bool{}
		for _, u := range us {
			var ids []string
			for i, img := range u.imgs {
				ids = append(ids, targetID(img))
				if u.defs[i] == nil {
					t.Errorf("%s: no definition", targetID(img))
				}
			}
			out = append(out, ids)
			if stores[u.store] {
				t.Errorf("two units export into %s", u.store)
			}
			stores[u.store] = true
			if want := b.imageStore() + "-" + strings.ReplaceAll(u.imgs[0].Plan.Platform, "/", "-") + "-0"; u.store != want {
				t.Errorf("%s exports into %s, want %s", ids, u.store, want)
			}
		}
		return out
	}
	got := units(target("a", "linux/amd64"), target("a", "linux/arm64"), target("b", "linux/amd64"), llbgen.Target{Plan: &plan.Target{Service: "c", Platform: "linux/amd64"}}, target("b", "linux/arm64"))
	if want := [][]string{{"a/linux/amd64", "b/linux/amd64"}, {"a/linux/arm64", "b/linux/arm64"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("units %q, want %q", got, want)
	}
	got = units(target("a", "linux/arm64"), target("b", "linux/arm64"))
	if want := [][]string{{"a/linux/arm64", "b/linux/arm64"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("one platform: units %q, want %q", got, want)
	}
}
