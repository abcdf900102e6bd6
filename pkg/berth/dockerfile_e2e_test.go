package berth

// The Dockerfile berth renders must build the same binaries as berth's own
// LLB. This test builds examples/monorepo's api service both ways on the
// test engine and compares the binaries byte for byte. golang:* cannot be
// pulled here, so the test assembles a Go builder image itself (berth's
// pinned toolchain, a static busybox, the CA bundle), serves it from a
// registry on 127.0.0.1 and pins the Dockerfile's build stage to it by
// digest.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/buildkit/client"
	"github.com/tonistiigi/fsutil"

	"github.com/berthbuild/berth/pkg/dockerfile"
	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

func TestDockerfileMatchesLLB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds with BuildKit")
	}
	// Give up a minute before the test binary's deadline: a failed solve
	// lets TestMain stop the engine, a timeout panic would leave it running.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if dl, ok := t.Deadline(); ok {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadline(ctx, dl.Add(-time.Minute))
		defer stop()
	}
	const service = "api"

	dir := copyTree(t, "../../examples/monorepo")
	proj, err := Plan(ctx, Options{Dir: dir, Env: testEnv(nil)})
	if err != nil {
		t.Fatal(err)
	}
	pl := proj.Plan

	engOpts := testEngine(t)
	eng, err := engine.Connect(ctx, engOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	// 1. The Go builder image, for the engine's own platform: the build
	// stage runs there (FROM --platform=$BUILDPLATFORM).
	start := time.Now()
	cacheDir := filepath.Join(os.TempDir(), "berth-test-cache")
	goroot, err := FetchToolchain(ctx, pl.Go.Version, eng.Platform, pl.Go.Proxy, pl.Go.SumDB)
	if err != nil {
		t.Fatal(err)
	}
	if goroot, err = executableToolchain(ctx, goroot, cacheDir); err != nil {
		t.Fatal(err)
	}
	img := goBuilderImage(t, goroot, pl.Go.Version, eng.Platform.Architecture)
	t.Logf("builder image assembled in %v", time.Since(start).Round(time.Millisecond))

	// 2. A registry on 127.0.0.1 serves it; the Dockerfile pins its digest.
	start = time.Now()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	tag, err := name.NewTag(host+"/golang:"+pl.Go.Version, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push the builder image to %s: %v", host, err)
	}
	dgst, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	goImage := host + "/golang@" + dgst.String()
	t.Logf("builder image %s pushed in %v", goImage, time.Since(start).Round(time.Millisecond))

	// 3. The side outputs, with every Dockerfile's build stage pinned to
	// that image. RenderInfo is built as SideOutputs builds it; rendering
	// without GoImage must give SideOutputs' bytes, which proves it.
	files, err := SideOutputs(proj)
	if err != nil {
		t.Fatal(err)
	}
	modRel, err := filepath.Rel(proj.Module.Dir, proj.Config.Dir)
	if err != nil {
		t.Fatal(err)
	}
	info := dockerfile.RenderInfo{
		Project:   pl.Project,
		Version:   pl.Version,
		GoVersion: pl.Go.Version,
		ModuleDir: pl.Module.Dir,
		OutDir:    path.Join(filepath.ToSlash(modRel), pl.OutDir),
	}
	var apiTargets []plan.Target
	for _, s := range pl.Services {
		var linux []plan.Target
		for _, tg := range pl.Targets {
			if tg.Service == s && tg.GOOS == "linux" {
				linux = append(linux, tg)
			}
		}
		if len(linux) == 0 || !linux[0].Outputs.Dockerfile {
			continue
		}
		if s == service {
			apiTargets = linux
		}
		unpinned, err := dockerfile.Render(linux, info)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(unpinned, files[linux[0].Paths.Dockerfile]) {
			t.Fatalf("RenderInfo differs from SideOutputs': %s renders differently", linux[0].Paths.Dockerfile)
		}
		pinnedInfo := info
		pinnedInfo.GoImage = goImage
		if files[linux[0].Paths.Dockerfile], err = dockerfile.Render(linux, pinnedInfo); err != nil {
			t.Fatal(err)
		}
	}
	if len(apiTargets) == 0 {
		t.Fatalf("examples/monorepo has no Dockerfile for %s", service)
	}
	for n, b := range files {
		p := filepath.Join(proj.Config.Dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// berth's build rewrites the project's Dockerfiles (unpinned), so
	// BuildKit reads the pinned one from a directory of its own.
	dfPath := filepath.Join(proj.Config.Dir, filepath.FromSlash(apiTargets[0].Paths.Dockerfile))
	dfDir := t.TempDir()
	for _, n := range []string{"Dockerfile", "Dockerfile.dockerignore"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(dfPath), n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dfDir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	df, _ := os.ReadFile(filepath.Join(dfDir, "Dockerfile"))
	if want := "FROM --platform=$BUILDPLATFORM " + goImage + " AS build\n"; !bytes.Contains(df, []byte(want)) {
		t.Fatalf("%s lacks %q:\n%s", dfPath, want, df)
	}
	var pfs []string
	for _, tg := range apiTargets {
		pfs = append(pfs, tg.Platform)
	}

	// 4 and 5, at the same time: BuildKit's Dockerfile frontend builds the
	// Dockerfile on the test engine, and berth builds the same service
	// with its own LLB (the options of build(), with ctx). The engine
	// pulls from 127.0.0.1 over plain HTTP with no buildkitd.toml:
	// BuildKit's resolver treats localhost and 127.0.0.1 as HTTP
	// registries unless configured otherwise.
	dfOut := t.TempDir()
	var (
		wg                sync.WaitGroup
		dfErr, berthErr   error
		dfTime, berthTime time.Duration
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		start := time.Now()
		if dfErr = solveDockerfile(ctx, eng.Client, proj.Module.Dir, dfDir, pfs, dfOut); dfErr != nil {
			cancel()
		}
		dfTime = time.Since(start)
	}()
	go func() {
		defer wg.Done()
		start := time.Now()
		_, berthErr = Build(ctx, BuildOptions{
			Options:  Options{Dir: dir, Env: testEnv(nil)},
			Engine:   engOpts,
			Services: []string{service},
			Progress: "quiet",
			CacheDir: cacheDir,
		})
		if berthErr != nil {
			cancel()
		}
		berthTime = time.Since(start)
	}()
	wg.Wait()
	if dfErr != nil {
		t.Errorf("docker build of %s: %v", dfPath, dfErr)
	}
	if berthErr != nil {
		t.Errorf("berth build of %s: %v", service, berthErr)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("Dockerfile built for %s in %v; berth built %s in %v",
		strings.Join(pfs, ","), dfTime.Round(time.Millisecond), service, berthTime.Round(time.Millisecond))

	for _, tg := range apiTargets {
		// The local exporter writes one directory per platform when there
		// are several: linux/arm/v7 → linux_arm_v7.
		sub := ""
		if len(pfs) > 1 {
			sub = strings.ReplaceAll(tg.Platform, "/", "_")
		}
		fromDockerfile := filepath.Join(dfOut, sub, filepath.FromSlash(dockerfile.ImagePath(tg.BinaryName)))
		fromBerth := filepath.Join(proj.Config.Dir, filepath.FromSlash(tg.Paths.Binary))
		a, errA := os.ReadFile(fromDockerfile)
		b, errB := os.ReadFile(fromBerth)
		if errA != nil || errB != nil {
			t.Errorf("%s: %v; %v", tg.Platform, errA, errB)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the Dockerfile's binary (sha256 %s, %d bytes) differs from berth's (sha256 %s, %d bytes)\n%s",
				tg.Platform, sum(a), len(a), sum(b), len(b), buildInfoDiff(t, fromDockerfile, fromBerth))
			continue
		}
		t.Logf("%s: identical, sha256 %s", tg.Platform, sum(a))
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// buildInfoDiff explains a mismatch with `go version -m` of both binaries.
func buildInfoDiff(t *testing.T, a, b string) string {
	t.Helper()
	show := func(p string) string {
		out, err := exec.Command("go", "version", "-m", p).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("go version -m %s: %v %s", p, err, out)
		}
		return strings.ReplaceAll(string(out), p, "BINARY")
	}
	x, y := show(a), show(b)
	if x == y {
		return "same build info:\n" + x
	}
	return "Dockerfile build info:\n" + x + "berth build info:\n" + y
}

// goBuilderImage assembles a stand-in for golang:<version>: the toolchain
// at /usr/local/go, a static busybox for the shell and coreutils the
// build stage runs, the CA bundle and the environment of the official
// image.
func goBuilderImage(t *testing.T, goroot, version, arch string) v1.Image {
	t.Helper()
	bb := staticBusybox(t, arch)
	applets := busyboxApplets(t, bb)
	tmp := t.TempDir()

	base := newLayer(t, filepath.Join(tmp, "base.tar.gz"))
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"etc", 0o755}, {"etc/ssl", 0o755}, {"etc/ssl/certs", 0o755},
		{"usr", 0o755}, {"usr/bin", 0o755}, {"usr/local", 0o755}, {"usr/local/bin", 0o755},
		{"root", 0o700}, {"tmp", 0o1777},
		// As the official image: mkdir -p "$GOPATH/src" "$GOPATH/bin" && chmod -R 1777 "$GOPATH".
		{"go", 0o1777}, {"go/bin", 0o1777}, {"go/src", 0o1777},
	} {
		base.dir(d.name, d.mode)
	}
	busybox, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	base.file("bin/busybox", busybox, 0o755)
	for _, a := range applets {
		base.symlink("bin/"+a, "busybox")
	}
	base.symlink("usr/bin/env", "../../bin/busybox")
	base.file("etc/ssl/certs/ca-certificates.crt", llbgen.CACerts(), 0o644)
	base.file("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	base.file("etc/group", []byte("root:x:0:\n"), 0o644)

	gol := newLayer(t, filepath.Join(tmp, "go.tar.gz"))
	gol.dir("usr/local/go", 0o755)
	err = filepath.WalkDir(goroot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == goroot {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, goroot+string(filepath.Separator)))
		if rel == ".complete" { // executableToolchain's marker
			return nil
		}
		dst := "usr/local/go/" + rel
		if d.IsDir() {
			gol.dir(dst, 0o755)
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if fi.Mode()&0o111 != 0 {
			mode = 0o755
		}
		gol.copyFile(dst, p, fi.Size(), mode)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	img, err := mutate.AppendLayers(empty.Image, base.layer(), gol.layer())
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Env = []string{
		"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"GOLANG_VERSION=" + version,
		"GOTOOLCHAIN=local",
		"GOPATH=/go",
	}
	cf.Config.WorkingDir = "/go"
	cf.Config.Cmd = []string{"sh"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// staticBusybox returns /bin/busybox, installing Debian's busybox-static
// when it is missing and the test runs as root, and checks that it is a
// static executable for arch.
func staticBusybox(t *testing.T, arch string) string {
	t.Helper()
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		apt, aptErr := exec.LookPath("apt-get")
		if os.Geteuid() != 0 || aptErr != nil {
			t.Fatalf("%s is missing: install busybox-static (apt-get install -y busybox-static); the test's builder image needs a static shell", bb)
		}
		install := func() ([]byte, error) {
			cmd := exec.Command(apt, "install", "-y", "-qq", "busybox-static")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			return cmd.CombinedOutput()
		}
		if out, err := install(); err != nil {
			if upd, err := exec.Command(apt, "update", "-qq").CombinedOutput(); err != nil {
				t.Fatalf("%s is missing and apt-get update failed: %v\n%s\ninstall busybox-static", bb, err, upd)
			}
			if out2, err := install(); err != nil {
				t.Fatalf("%s is missing and apt-get install -y busybox-static failed: %v\n%s%s", bb, err, out, out2)
			}
		}
	}
	f, err := elf.Open(bb)
	if err != nil {
		t.Fatalf("%s: %v: install busybox-static", bb, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked: install busybox-static, not busybox", bb)
		}
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM, "riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390}
	if m, ok := machines[arch]; !ok || f.Machine != m {
		t.Fatalf("%s is for %v; the engine builds on %s", bb, f.Machine, arch)
	}
	return bb
}

// busyboxApplets lists the applets to link in /bin, checking that the
// commands the Dockerfile's build stage runs are there.
func busyboxApplets(t *testing.T, bb string) []string {
	t.Helper()
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", bb, err)
	}
	have := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		have[strings.TrimSpace(sc.Text())] = true
	}
	// sh runs every RUN; mkdir, cp, chmod and chown prepare the static
	// base; the rest make the image usable for a look inside.
	need := []string{"sh", "mkdir", "cp", "chmod", "chown"}
	extra := []string{"ash", "cat", "env", "ln", "ls", "mv", "rm", "echo", "true", "false", "test", "[", "touch",
		"id", "uname", "which", "head", "tail", "grep", "sed", "find", "tar", "gzip", "sort", "tr", "wc", "xargs",
		"dirname", "basename", "readlink", "pwd", "sleep"}
	var list []string
	for _, a := range need {
		if !have[a] {
			t.Fatalf("%s has no %s applet", bb, a)
		}
		list = append(list, a)
	}
	for _, a := range extra {
		if have[a] {
			list = append(list, a)
		}
	}
	sort.Strings(list)
	return list
}

// tarLayer writes a gzipped layer tarball, compressed once.
type tarLayer struct {
	t    *testing.T
	path string
	f    *os.File
	gz   *gzip.Writer
	tw   *tar.Writer
}

var layerTime = time.Unix(0, 0).UTC()

func newLayer(t *testing.T, p string) *tarLayer {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	return &tarLayer{t: t, path: p, f: f, gz: gz, tw: tar.NewWriter(gz)}
}

func (l *tarLayer) header(h *tar.Header) {
	h.ModTime, h.Format = layerTime, tar.FormatPAX
	if err := l.tw.WriteHeader(h); err != nil {
		l.t.Fatal(err)
	}
}

func (l *tarLayer) dir(name string, mode int64) {
	l.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
}

func (l *tarLayer) symlink(name, target string) {
	l.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

func (l *tarLayer) file(name string, b []byte, mode int64) {
	l.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b))})
	if _, err := l.tw.Write(b); err != nil {
		l.t.Fatal(err)
	}
}

func (l *tarLayer) copyFile(name, src string, size, mode int64) {
	f, err := os.Open(src)
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	l.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size})
	if _, err := io.CopyN(l.tw, f, size); err != nil {
		l.t.Fatal(err)
	}
}

func (l *tarLayer) layer() v1.Layer {
	for _, c := range []io.Closer{l.tw, l.gz, l.f} {
		if err := c.Close(); err != nil {
			l.t.Fatal(err)
		}
	}
	layer, err := tarball.LayerFromFile(l.path)
	if err != nil {
		l.t.Fatal(err)
	}
	return layer
}

// solveDockerfile builds the Dockerfile in dfDir with BuildKit's own
// Dockerfile frontend for the platforms, exporting each platform's
// filesystem to out. A failure carries the failing step's log.
func solveDockerfile(ctx context.Context, c *client.Client, contextDir, dfDir string, pfs []string, out string) error {
	ctxFS, err := fsutil.NewFS(contextDir)
	if err != nil {
		return err
	}
	dfFS, err := fsutil.NewFS(dfDir)
	if err != nil {
		return err
	}
	ch := make(chan *client.SolveStatus)
	var mu sync.Mutex
	names := map[string]string{}
	logs := map[string]*bytes.Buffer{}
	failed := map[string]string{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range ch {
			mu.Lock()
			for _, v := range s.Vertexes {
				names[v.Digest.String()] = v.Name
				if v.Error != "" {
					failed[v.Digest.String()] = v.Error
				}
			}
			for _, l := range s.Logs {
				k := l.Vertex.String()
				if logs[k] == nil {
					logs[k] = &bytes.Buffer{}
				}
				logs[k].Write(l.Data)
			}
			mu.Unlock()
		}
	}()
	_, err = c.Solve(ctx, nil, client.SolveOpt{
		Frontend: "dockerfile.v0",
		FrontendAttrs: map[string]string{
			"filename": "Dockerfile",
			"platform": strings.Join(pfs, ","),
		},
		LocalMounts: map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Exports:     []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: out}},
	}, ch)
	<-done
	if err == nil {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	var msg strings.Builder
	fmt.Fprintf(&msg, "%v", err)
	for d, e := range failed {
		fmt.Fprintf(&msg, "\nstep %s failed: %s", names[d], e)
		if l := logs[d]; l != nil {
			fmt.Fprintf(&msg, "\n%s", lastLines(l.String(), 40))
		}
	}
	return fmt.Errorf("%s", msg.String())
}
