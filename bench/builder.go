package main

// The Go builder image the hand-written Dockerfiles start FROM: golang:*
// cannot be pulled here, so the benchmark assembles an equivalent (the
// pinned Go toolchain at /usr/local/go, a static busybox for /bin/sh, the
// CA bundle, the official image's environment) and serves it from a
// registry on 127.0.0.1, pinned by digest as a careful user would.

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthbuild/berth/pkg/llbgen"
)

// startRegistry serves an in-memory OCI registry on 127.0.0.1. BuildKit
// talks plain HTTP to 127.0.0.1 without configuration.
func startRegistry() (host string, stop func()) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	return strings.TrimPrefix(srv.URL, "http://"), srv.Close
}

// pushBuilder assembles the builder image (its layers are kept in dir
// between benchmark runs) and pushes it; it returns the pinned reference.
func pushBuilder(ctx context.Context, dir, host string) (string, error) {
	img, err := builderImage(ctx, dir)
	if err != nil {
		return "", err
	}
	tag, err := name.NewTag(host+"/golang:"+goVersion, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push the builder image to %s: %w", host, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return host + "/golang@" + d.String(), nil
}

func builderImage(ctx context.Context, dir string) (v1.Image, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	basePath := filepath.Join(dir, "base.tar.gz")
	goPath := filepath.Join(dir, "go"+goVersion+".tar.gz")
	if _, err := os.Stat(basePath); err != nil {
		if err := writeLayer(basePath, baseLayer); err != nil {
			return nil, fmt.Errorf("builder base layer: %w", err)
		}
	}
	if _, err := os.Stat(goPath); err != nil {
		goroot, err := downloadToolchain(ctx)
		if err != nil {
			return nil, err
		}
		if err := writeLayer(goPath, func(tw *tar.Writer) error { return toolchainLayer(tw, goroot) }); err != nil {
			return nil, fmt.Errorf("builder toolchain layer: %w", err)
		}
	}
	var layers []v1.Layer
	for _, p := range []string{basePath, goPath} {
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Env = []string{
		"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"GOLANG_VERSION=" + goVersion,
		"GOTOOLCHAIN=local",
		"GOPATH=/go",
	}
	cf.Config.WorkingDir = "/go"
	cf.Config.Cmd = []string{"sh"}
	return mutate.ConfigFile(img, cf)
}

// downloadToolchain fetches golang.org/toolchain for this machine through
// GOPROXY, checked against GOSUMDB, and returns its directory.
func downloadToolchain(ctx context.Context) (string, error) {
	mod := fmt.Sprintf("golang.org/toolchain@v0.0.1-go%s.linux-%s", goVersion, runtime.GOARCH)
	tmp, err := os.MkdirTemp("", "bench-toolchain-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on")
	out, err := cmd.Output()
	var res struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &res); err != nil || jerr != nil || res.Error != "" {
		return "", fmt.Errorf("go mod download %s: %v %s", mod, err, res.Error)
	}
	return res.Dir, nil
}

func writeLayer(path string, fill func(*tar.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	if err := fill(tw); err != nil {
		f.Close()
		return err
	}
	for _, c := range []io.Closer{tw, gz, f} {
		if err := c.Close(); err != nil {
			return err
		}
	}
	return os.Rename(tmp, path)
}

var epoch0 = time.Unix(0, 0).UTC()

func tarDir(tw *tar.Writer, name string, mode int64) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch0, Format: tar.FormatPAX})
}

func tarFile(tw *tar.Writer, name string, body []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: epoch0, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(body)
	return err
}

func tarSymlink(tw *tar.Writer, name, target string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch0, Format: tar.FormatPAX})
}

// baseLayer: directories, busybox and its applets, CA bundle, passwd.
func baseLayer(tw *tar.Writer) error {
	bb, err := staticBusybox()
	if err != nil {
		return err
	}
	body, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", bb, err)
	}
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"etc", 0o755}, {"etc/ssl", 0o755}, {"etc/ssl/certs", 0o755},
		{"usr", 0o755}, {"usr/bin", 0o755}, {"usr/local", 0o755}, {"root", 0o700}, {"tmp", 0o1777},
		{"go", 0o1777}, {"go/bin", 0o1777}, {"go/src", 0o1777},
	} {
		if err := tarDir(tw, d.name, d.mode); err != nil {
			return err
		}
	}
	if err := tarFile(tw, "bin/busybox", body, 0o755); err != nil {
		return err
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tarSymlink(tw, "bin/"+a, "busybox"); err != nil {
			return err
		}
	}
	if err := tarSymlink(tw, "usr/bin/env", "../../bin/busybox"); err != nil {
		return err
	}
	if err := tarFile(tw, "etc/ssl/certs/ca-certificates.crt", llbgen.CACerts(), 0o644); err != nil {
		return err
	}
	if err := tarFile(tw, "etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	return tarFile(tw, "etc/group", []byte("root:x:0:\n"), 0o644)
}

// staticBusybox finds a static busybox for /bin/sh, installing Debian's
// busybox-static when it is missing.
func staticBusybox() (string, error) {
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		log.Printf("installing busybox-static for the builder image's shell")
		install := exec.Command("apt-get", "install", "-y", "-qq", "busybox-static")
		install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := install.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s is missing and apt-get install -y busybox-static failed: %v\n%s", bb, err, out)
		}
	}
	f, err := elf.Open(bb)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: install busybox-static", bb)
		}
	}
	return bb, nil
}

// toolchainLayer puts GOROOT at /usr/local/go, its programs executable
// (the module cache extracts everything read-only, without x bits).
func toolchainLayer(tw *tar.Writer, goroot string) error {
	if err := tarDir(tw, "usr/local/go", 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(goroot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == goroot {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, goroot+string(filepath.Separator)))
		dst := "usr/local/go/" + rel
		if d.IsDir() {
			return tarDir(tw, dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		mode := int64(0o644)
		if strings.HasPrefix(rel, "bin/") || strings.HasPrefix(rel, "pkg/tool/") {
			mode = 0o755
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return tarFile(tw, dst, body, mode)
	})
}
