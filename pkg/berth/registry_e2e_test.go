package berth

import (
	"archive/tar"
	"bytes"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthbuild/berth/pkg/engine"
)

// testRegistry runs an OCI registry on 127.0.0.1 for one test.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestPushAndPullBack(t *testing.T) {
	reg := testRegistry(t)
	dir := copyTree(t, "../../examples/hello")
	res, _ := build(t, dir, func(o *BuildOptions) { o.Push = reg + "/berth" })
	if len(res.Pushed) != 1 || res.Pushed[0] != reg+"/berth/hello:0.0.0-dev" {
		t.Fatalf("pushed %v", res.Pushed)
	}
	ref, err := name.ParseReference(res.Pushed[0], name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull back %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != res.Images[0].Digest {
		t.Errorf("registry has %s, the OCI layout %s", d, res.Images[0].Digest)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Platform.Architecture != "amd64" {
		t.Fatalf("pulled index: %v %+v", err, m)
	}
}

func TestBaseImageFromRegistry(t *testing.T) {
	reg := testRegistry(t)
	// A base image with one marker file, pushed by digest.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := []byte("from the base\n")
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/base-marker", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write(body)
	tw.Close()
	l, err := tarball.LayerFromReader(bytes.NewReader(layer.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.ConfigFile(img, mustConfig(t, img))
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.ParseReference(reg+"/base:1", name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()
	pinned := reg + "/base@" + dg.String()

	dir := copyTree(t, "../../examples/hello")
	cfg := filepath.Join(dir, "berth.cue")
	src, _ := os.ReadFile(cfg)
	src = []byte(strings.Replace(string(src), `base:        "scratch"`, `base:        "`+pinned+`"`, 1))
	if err := os.WriteFile(cfg, src, 0o644); err != nil {
		t.Fatal(err)
	}
	res, _ := build(t, dir, nil)
	out := image(t, res.Layout, "hello:0.0.0-dev", "linux/amd64")
	if got := fileIn(t, out, "/etc/base-marker"); !bytes.Equal(got, body) {
		t.Errorf("base file: %q", got)
	}
	fileIn(t, out, "/hello")
	layers, _ := out.Layers()
	if len(layers) != 2 {
		t.Errorf("%d layers, want the base's and the binary's", len(layers))
	}
}

func mustConfig(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	return cf
}

// TestCacheThroughRegistry exports the build cache to a registry, wipes
// the engine, and builds again from that cache: the module download and
// the standard library and every service's compile come from the cache,
// and the image is the same.
func TestCacheThroughRegistry(t *testing.T) {
	reg := testRegistry(t)
	dir := copyTree(t, "../../examples/hello")
	// A service with an image and no binary: its steps are in the cache too.
	appendFile(t, filepath.Join(dir, "berth.cue"), `
services: hola: {main: ".", base: "static", outputs: binary: false}
`)
	eo := privateEngine(t)
	opts := func(mod func(*BuildOptions)) func(*BuildOptions) {
		return func(o *BuildOptions) { o.Engine = eo; mod(o) }
	}
	first, _ := build(t, dir, opts(func(o *BuildOptions) { o.CacheTo = []string{"type=registry,ref=" + reg + "/cache,mode=max"} }))
	// Wipe the engine: stop it and delete its state.
	if _, err := engine.Stop(t.Context(), eo); err != nil {
		t.Fatal(err)
	}
	p, _ := engine.EnginePaths(eo)
	if err := os.RemoveAll(p.Root); err != nil {
		t.Fatal(err)
	}
	second, log := build(t, dir, opts(func(o *BuildOptions) { o.CacheFrom = []string{"type=registry,ref=" + reg + "/cache"} }))
	if ran := append(log.ran("] go build "), log.ran("] go mod download")...); len(ran) != 0 {
		t.Errorf("with the imported cache, %v ran again; the engine's log ends with:\n%s", ran, engine.LogTail(eo, 40))
	}
	if len(second.Images) != 2 {
		t.Fatalf("images: %+v", second.Images)
	}
	for i := range first.Images {
		if first.Images[i].Digest != second.Images[i].Digest {
			t.Errorf("%s: digests differ: %s vs %s", first.Images[i].Service, first.Images[i].Digest, second.Images[i].Digest)
		}
	}
}

// TestCacheThroughLocalDir does the same with a cache in a directory, as
// CI caches keep it, named in the config's cache block (to, then from).
func TestCacheThroughLocalDir(t *testing.T) {
	cacheDir := t.TempDir()
	dir := copyTree(t, "../../examples/hello")
	cfg := filepath.Join(dir, "berth.cue")
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, cfg, `
cache: to: ["type=local,dest=`+cacheDir+`,mode=max"]
`)
	eo := privateEngine(t)
	first, _ := build(t, dir, func(o *BuildOptions) { o.Engine = eo })
	if _, err := os.Stat(filepath.Join(cacheDir, "index.json")); err != nil {
		t.Fatalf("no cache was exported to %s: %v", cacheDir, err)
	}
	// A build that exports a cache takes its binaries from a local export,
	// not from the images; its bundle is the same as any build's: it ends
	// with the image's layer.
	if len(first.Bundles) != 1 {
		t.Fatalf("bundles %v", first.Bundles)
	}
	bundleHoldsLayer(t, first.Bundles[0], image(t, first.Layout, first.Images[0].Ref, "linux/amd64"))
	if _, err := engine.Stop(t.Context(), eo); err != nil {
		t.Fatal(err)
	}
	p, _ := engine.EnginePaths(eo)
	if err := os.RemoveAll(p.Root); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(orig, []byte(`
cache: from: ["type=local,src=`+cacheDir+`"]
`)...), 0o644); err != nil {
		t.Fatal(err)
	}
	second, log := build(t, dir, func(o *BuildOptions) { o.Engine = eo })
	if ran := append(log.ran("] go build "), log.ran("] go mod download")...); len(ran) != 0 {
		t.Errorf("with the imported cache, %v ran again; the engine's log ends with:\n%s", ran, engine.LogTail(eo, 40))
	}
	if first.Images[0].Digest != second.Images[0].Digest {
		t.Errorf("digests differ: %s vs %s", first.Images[0].Digest, second.Images[0].Digest)
	}
}
