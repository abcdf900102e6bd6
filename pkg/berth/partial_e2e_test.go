package berth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A build of some platforms leaves the other platforms' outputs as they
// are, and the side outputs those of the whole project; a service gone
// from the project goes from the layout, which then stays put.
func TestBuildSomePlatforms(t *testing.T) {
	dir := copyTree(t, "../../examples/monorepo")
	build(t, dir, nil)
	amd64 := filepath.Join(dir, "dist/bin/api/linux_amd64/api")
	before, err := os.ReadFile(amd64)
	if err != nil {
		t.Fatal(err)
	}

	res, _ := build(t, dir, func(o *BuildOptions) { o.Platforms = []string{"linux/arm64"} })
	if len(res.Binaries) != 3 { // api, worker, gateway
		t.Errorf("a linux/arm64 build lists binaries %v", res.Binaries)
	}
	if after, err := os.ReadFile(amd64); err != nil || string(after) != string(before) {
		t.Errorf("a linux/arm64 build removed or changed %s: %v", amd64, err)
	}
	full, err := Plan(context.Background(), Options{Dir: dir, Env: testEnv(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if gen, err := GenProject(full, true); err != nil || len(gen.Stale) > 0 {
		t.Errorf("after a linux/arm64 build, gen --check: %v %v\n%s", err, gen.Stale, gen.Diff)
	}
	_, idx := layoutIndex(t, res.Layout)
	refs := map[string]bool{}
	for _, m := range idx.Manifests {
		refs[m.Annotations["org.opencontainers.image.ref.name"]] = true
	}
	if !refs["admin:1.4.2"] || !refs["api:1.4.2"] {
		t.Errorf("after a linux/arm64 build the layout has %v; want admin's image kept", refs)
	}
	image(t, res.Layout, "api:1.4.2", "linux/arm64")

	// The whole project again: nothing recompiles, every platform is back.
	res, log := build(t, dir, nil)
	if ran := log.ran("] go build "); len(ran) != 0 {
		t.Errorf("a whole build after a linux/arm64 one recompiled %v", ran)
	}
	for _, pf := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		image(t, res.Layout, "api:1.4.2", pf)
	}

	// gateway leaves the project.
	cue := filepath.Join(dir, "berth.cue")
	src, err := os.ReadFile(cue)
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(src), "\tgateway: {"), strings.Index(string(src), "\tadmin: {")
	if i < 0 || j < i {
		t.Fatal("the monorepo example has no gateway block before admin")
	}
	if err := os.WriteFile(cue, append(src[:i:i], src[j:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _ = build(t, dir, nil)
	_, idx = layoutIndex(t, res.Layout)
	for _, m := range idx.Manifests {
		if strings.HasPrefix(m.Annotations["org.opencontainers.image.ref.name"], "gateway:") {
			t.Errorf("gateway left the project and stays in the layout: %v", m.Annotations)
		}
	}
	st, err := os.Stat(filepath.Join(res.Layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, _ = build(t, dir, nil)
	if st2, err := os.Stat(filepath.Join(res.Layout, "index.json")); err != nil || !os.SameFile(st, st2) {
		t.Errorf("a warm build rewrote the layout (%v)", err)
	}
}

// A push that fails comes after the build is published: the outputs are
// in place, and the error says so.
func TestPushFailsAfterPublish(t *testing.T) {
	dir := copyTree(t, "../../examples/hello")
	_, err := Build(context.Background(), BuildOptions{
		Options:    Options{Dir: dir, Env: testEnv(nil)},
		Engine:     testEngine(t),
		Progress:   "quiet",
		CacheDir:   filepath.Join(os.TempDir(), "berth-test-cache"),
		Push:       "127.0.0.1:1/berth",
		OCIArchive: true,
	})
	if err == nil {
		t.Fatal("a push to a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "push") || !strings.Contains(err.Error(), "its outputs are in "+filepath.Join(dir, "dist")) {
		t.Errorf("the error of a failed push: %v", err)
	}
	for _, p := range []string{"dist/oci/index.json", "dist/archives/hello_0.0.0-dev.oci.tar"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("after a failed push: %v", err)
		}
	}
}
