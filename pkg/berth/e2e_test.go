package berth

// End-to-end tests: real buildkitd (the embedded engine, started by the
// tests in a private state directory), real Go toolchain, real images.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/moby/buildkit/client"

	"github.com/berthbuild/berth/pkg/engine"
)

var (
	engineOnce sync.Once
	engineOpts engine.Options
	engineErr  error
)

// testEngine returns options for an embedded engine private to this test
// run, building buildkitd first when no binary is at hand.
func testEngine(t *testing.T) engine.Options {
	t.Helper()
	engineOnce.Do(func() {
		// <tmp>/berth is the state directory berth itself uses with
		// XDG_STATE_HOME=<tmp>: a berth binary run by a test shares the
		// engine (see engineEnv).
		home, err := os.MkdirTemp("", "bst")
		if err != nil {
			engineErr = err
			return
		}
		state := filepath.Join(home, "berth")
		if err := os.Mkdir(state, 0o700); err != nil {
			engineErr = err
			return
		}
		bk := os.Getenv("BERTH_BUILDKITD")
		if bk == "" {
			if p, err := filepath.Abs("../../bin/buildkitd"); err == nil {
				if _, err := os.Stat(p); err == nil {
					bk = p
				}
			}
		}
		if bk == "" {
			bk = filepath.Join(state, "buildkitd")
			cmd := exec.Command("go", "build", "-o", bk, "github.com/moby/buildkit/cmd/buildkitd")
			if out, err := cmd.CombinedOutput(); err != nil {
				engineErr = fmt.Errorf("build buildkitd: %v\n%s", err, out)
				return
			}
		}
		engineOpts = engine.Options{StateDir: state, Buildkitd: bk}
	})
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engineOpts
}

// engineEnv is the environment under which a berth binary uses the test
// engine as its embedded engine.
func engineEnv(t *testing.T) []string {
	o := testEngine(t)
	return append(os.Environ(), "XDG_STATE_HOME="+filepath.Dir(o.StateDir), "BERTH_BUILDKITD="+o.Buildkitd)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if engineOpts.StateDir != "" {
		_, _ = engine.Stop(context.Background(), engineOpts)
		os.RemoveAll(filepath.Dir(engineOpts.StateDir))
	}
	os.Exit(code)
}

// copyTree copies an example into a temporary directory, outside git, so
// that version, revision and SOURCE_DATE_EPOCH are fixed.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			if info.Name() == "dist" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func testEnv(extra map[string]string) Env {
	return func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		if k == "SOURCE_DATE_EPOCH" {
			return "1700000000"
		}
		return os.Getenv(k)
	}
}

type stepLog struct {
	mu   sync.Mutex
	done map[string]bool // vertex name → ran (not cached); steps without inputs are not recorded
}

func (l *stepLog) status(s *client.SolveStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = map[string]bool{}
	}
	for _, v := range s.Vertexes {
		// The solver reports a vertex with its inputs; progress of a
		// cached result's blobs being pulled from an imported cache comes
		// under the same digest without them, and is not a run.
		if v.Completed != nil && !v.Cached && v.Error == "" && len(v.Inputs) > 0 {
			l.done[v.Name] = true
		}
	}
}

// ran lists the steps that ran, not cached, whose names contain sub.
func (l *stepLog) ran(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n := range l.done {
		if strings.Contains(n, sub) {
			out = append(out, n)
		}
	}
	return out
}

func build(t *testing.T, dir string, mod func(*BuildOptions)) (*BuildResult, *stepLog) {
	t.Helper()
	log := &stepLog{}
	o := BuildOptions{
		Options:  Options{Dir: dir, Env: testEnv(nil)},
		Engine:   testEngine(t),
		Progress: "quiet",
		Status:   log.status,
		CacheDir: filepath.Join(os.TempDir(), "berth-test-cache"),
	}
	if mod != nil {
		mod(&o)
	}
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatalf("build %s: %v", dir, err)
	}
	return res, log
}

// layoutIndex reads the top index of an OCI layout.
func layoutIndex(t *testing.T, layoutDir string) (v1.ImageIndex, *v1.IndexManifest) {
	t.Helper()
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return top, im
}

// image returns the image of a service for a platform from the layout.
func image(t *testing.T, layoutDir, ref, platform string) v1.Image {
	t.Helper()
	top, im := layoutIndex(t, layoutDir)
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] != ref {
			continue
		}
		idx, err := top.ImageIndex(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, md := range m.Manifests {
			pf := md.Platform.OS + "/" + md.Platform.Architecture
			if md.Platform.Variant != "" {
				pf += "/" + md.Platform.Variant
			}
			if pf == platform {
				img, err := idx.Image(md.Digest)
				if err != nil {
					t.Fatal(err)
				}
				return img
			}
		}
		t.Fatalf("%s has no %s image", ref, platform)
	}
	t.Fatalf("layout %s has no index named %s", layoutDir, ref)
	return nil
}

// fileIn reads a file from an image's layers (top layer wins).
// layerNames lists a layer's entries in order, without a leading "./".
func layerNames(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	eachTarEntry(t, rc, func(h *tar.Header, _ io.Reader) {
		names = append(names, strings.TrimPrefix(h.Name, "./"))
	})
	return names
}

// eachTarEntry calls f with every entry of the tar stream r.
func eachTarEntry(t *testing.T, r io.Reader, f func(*tar.Header, io.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		f(h, tr)
	}
}

func fileIn(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var found []byte
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		eachTarEntry(t, rc, func(h *tar.Header, r io.Reader) {
			if strings.TrimPrefix(h.Name, "./") == strings.TrimPrefix(name, "/") {
				found, _ = io.ReadAll(r)
			}
		})
		rc.Close()
	}
	if found == nil {
		t.Fatalf("%s not in image", name)
	}
	return found
}

func TestBuildHello(t *testing.T) {
	dir := copyTree(t, "../../examples/hello")
	res, _ := build(t, dir, nil)
	if len(res.Images) != 1 || res.Images[0].Ref != "hello:0.0.0-dev" {
		t.Fatalf("images = %+v", res.Images)
	}
	img := image(t, res.Layout, "hello:0.0.0-dev", "linux/amd64")
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/hello" {
		t.Errorf("entrypoint %q", got)
	}
	if got := strings.Join(cfg.Config.Cmd, " "); got != "berth user" {
		t.Errorf("cmd %q", got)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q", cfg.Config.User)
	}
	if cfg.Created.Unix() != 1700000000 {
		t.Errorf("created %v, want SOURCE_DATE_EPOCH", cfg.Created)
	}
	if cfg.Config.Labels["org.opencontainers.image.title"] != "hello" {
		t.Errorf("labels %v", cfg.Config.Labels)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Errorf("scratch image has %d layers, want 1 (the binary)", len(layers))
	} else if names := layerNames(t, layers[0]); !reflect.DeepEqual(names, []string{"hello"}) {
		// No directory entries: the layer is as small as the binary allows.
		t.Errorf("scratch image's layer holds %q, want only the binary", names)
	}
	// Image overhead over the binary: config + manifest.
	rawCfg, _ := img.RawConfigFile()
	rawMan, _ := img.RawManifest()
	if n := len(rawCfg) + len(rawMan); n >= 4<<10 {
		t.Errorf("scratch image config+manifest is %d bytes, want < 4 KiB", n)
	}
	// Run the binary taken out of the image.
	bin := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(bin, fileIn(t, img, "/hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, cfg.Config.Cmd...).CombinedOutput()
	if err != nil || string(out) != "hello, berth user, from berth\n" {
		t.Fatalf("binary from image: %v %q", err, out)
	}
	// The plain binary is published too and is the same file.
	plain, err := os.ReadFile(filepath.Join(dir, "dist/bin/hello/linux_amd64/hello"))
	if err != nil || !bytes.Equal(plain, fileIn(t, img, "/hello")) {
		t.Fatalf("dist/bin binary differs from the image's: %v", err)
	}
	// The bundle ends with the binary, and the binary is the image's own
	// layer as it is: not compressed a second time.
	if len(res.Bundles) != 1 {
		t.Fatalf("bundles %v", res.Bundles)
	}
	bundle := bundleHoldsLayer(t, res.Bundles[0], img)
	zr, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false) // one member holds it all
	var entries []string
	eachTarEntry(t, zr, func(h *tar.Header, r io.Reader) {
		entries = append(entries, h.Name)
		if h.Name == "hello" {
			if b, _ := io.ReadAll(r); !bytes.Equal(b, plain) {
				t.Error("the bundle's binary differs from dist/bin's")
			}
		}
	})
	if len(entries) < 3 || entries[len(entries)-1] != "hello" || !slices.Contains(entries, "install.sh") || !slices.Contains(entries, "hello.service") {
		t.Errorf("bundle entries %v, want install.sh, hello.service, ... and the binary last", entries)
	}
	// Nothing temporary is left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "dist"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: dist/%s", e.Name())
		}
	}
}

// bundleHoldsLayer checks that the bundle at path ends with the deflate
// stream of img's last layer as it is (not compressed again), in one gzip
// member, and returns the bundle.
func bundleHoldsLayer(t *testing.T, path string, img v1.Image) []byte {
	t.Helper()
	bundle, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("image layers: %v", err)
	}
	rl, err := layers[len(layers)-1].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	raw, _ := io.ReadAll(rl)
	// Between a plain 10-byte gzip header and the 8-byte trailer.
	if len(raw) < 18 || len(bundle) < 8 || !bytes.HasSuffix(bundle[:len(bundle)-8], raw[10:len(raw)-8]) {
		t.Errorf("%s (%d bytes) does not end with the image's layer's deflate stream (%d bytes)", filepath.Base(path), len(bundle), len(raw))
	}
	return bundle
}

func TestBuildReproducible(t *testing.T) {
	dir := copyTree(t, "../../examples/hello")
	a, _ := build(t, dir, func(o *BuildOptions) { o.NoCache = true })
	b, _ := build(t, dir, func(o *BuildOptions) { o.NoCache = true })
	if a.Images[0].Digest != b.Images[0].Digest {
		t.Fatalf("two --no-cache builds gave %s and %s", a.Images[0].Digest, b.Images[0].Digest)
	}
}

func TestBuildMonorepo(t *testing.T) {
	dir := copyTree(t, "../../examples/monorepo")
	res, _ := build(t, dir, nil)
	if len(res.Images) != 4 {
		t.Fatalf("images %+v", res.Images)
	}
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64, "linux/arm/v7": elf.EM_ARM}
	for pf, m := range machines {
		img := image(t, res.Layout, "api:1.4.2", pf)
		bin := fileIn(t, img, "/api")
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != m {
			t.Errorf("api %s: ELF machine %v, want %v", pf, f.Machine, m)
		}
		cfg, _ := img.ConfigFile()
		env := strings.Join(cfg.Config.Env, " ")
		if !strings.Contains(env, "GOMAXPROCS=2") || !strings.Contains(env, "GOMEMLIMIT=230MiB") {
			t.Errorf("api env %q lacks the derived runtime settings", env)
		}
		if _, ok := cfg.Config.ExposedPorts["8080/tcp"]; !ok {
			t.Errorf("api ports %v", cfg.Config.ExposedPorts)
		}
	}
	// The static base: accounts, CA bundle, zoneinfo, and its size.
	img := image(t, res.Layout, "api:1.4.2", "linux/amd64")
	if !bytes.Contains(fileIn(t, img, "/etc/passwd"), []byte("nonroot:x:65532:65532")) {
		t.Error("static base has no nonroot user")
	}
	if !bytes.Contains(fileIn(t, img, "/etc/ssl/certs/ca-certificates.crt"), []byte("BEGIN CERTIFICATE")) {
		t.Error("static base has no CA bundle")
	}
	layers, _ := img.Layers()
	if len(layers) != 2 {
		t.Fatalf("static image has %d layers, want 2", len(layers))
	}
	baseSize, _ := layers[0].Size()
	if baseSize >= 300<<10 {
		t.Errorf("static base layer is %d bytes compressed, want < 300 KiB", baseSize)
	}
	// Binary-only targets: PE for windows, Mach-O for darwin.
	for _, p := range []string{"shopctl/windows_amd64/shopctl.exe", "shopctl/darwin_arm64/shopctl", "shopctl/linux_amd64/shopctl"} {
		if _, err := os.Stat(filepath.Join(dir, "dist/bin", p)); err != nil {
			t.Errorf("binary %s: %v", p, err)
		}
	}
	// The amd64 binary runs here and carries the version stamp.
	if runtime.GOARCH == "amd64" {
		out, err := exec.Command(filepath.Join(dir, "dist/bin/worker/linux_amd64/worker")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "worker 1.4.2 linux/amd64") {
			t.Errorf("worker: %v %q", err, out)
		}
	}

	// Warm and after one change: only that service's binaries recompile.
	_, warm := build(t, dir, nil)
	if ran := warm.ran("go build"); len(ran) != 0 {
		t.Errorf("warm build recompiled %v", ran)
	}
	f := filepath.Join(dir, "cmd/worker/main.go")
	src, _ := os.ReadFile(f)
	if err := os.WriteFile(f, append(src, []byte("\n// changed\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, changed := build(t, dir, nil)
	ran := changed.ran("] go build ")
	if len(ran) != 3 {
		t.Errorf("after changing worker, recompiled %v; want worker's 3 platforms only", ran)
	}
	for _, r := range ran {
		if !strings.Contains(r, "go build worker ") {
			t.Errorf("after changing worker, %q recompiled", r)
		}
	}

	// The package every service imports: its own step runs once on each
	// platform two or more services build for, then every service's.
	f = filepath.Join(dir, "internal/shop/shop.go")
	src, _ = os.ReadFile(f)
	if err := os.WriteFile(f, append(src, []byte("\n// changed\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, shared := build(t, dir, nil)
	var sharedSteps, services []string
	for _, r := range shared.ran("] go build ") {
		if strings.Contains(r, "] go build shared ") {
			sharedSteps = append(sharedSteps, r)
		} else {
			services = append(services, r)
		}
	}
	sort.Strings(sharedSteps)
	if want := []string{"[berth] go build shared (linux/amd64, 1 package)", "[berth] go build shared (linux/arm/v7, 1 package)", "[berth] go build shared (linux/arm64, 1 package)"}; !reflect.DeepEqual(sharedSteps, want) {
		t.Errorf("after changing the shared package, shared steps %q ran; want %q", sharedSteps, want)
	}
	if len(services) != 13 {
		t.Errorf("after changing the shared package, %d service steps ran, want all 13: %q", len(services), services)
	}
}

func TestBuildFailureNamesConfig(t *testing.T) {
	dir := copyTree(t, "../../examples/hello")
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), BuildOptions{
		Options:  Options{Dir: dir, Env: testEnv(nil)},
		Engine:   testEngine(t),
		Progress: "quiet",
		CacheDir: filepath.Join(os.TempDir(), "berth-test-cache"),
	})
	if err == nil {
		t.Fatal("a broken service built")
	}
	msg := err.Error()
	for _, want := range []string{"go build hello (linux/amd64)", "undefined: undefinedThing"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	var w interface{ Where() []error }
	if !errors.As(err, &w) || len(w.Where()) == 0 || !strings.Contains(fmt.Sprint(w.Where()), "berth.cue:5") {
		t.Errorf("error does not point at the service's config (berth.cue:5): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dist", "oci")); err == nil {
		t.Error("a failed build published dist/oci")
	}
}

// appendFile adds text at the end of a file.
func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
