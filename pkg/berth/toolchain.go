package berth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/plan"
)

// toolchainArch maps a platform to the name golang.org/toolchain uses.
func toolchainArch(p ocispecs.Platform) string {
	if p.Architecture == "arm" {
		return "armv6l"
	}
	return p.Architecture
}

// ToolchainModule is the module that holds the Go toolchain for a
// platform, as GOTOOLCHAIN downloads it.
func ToolchainModule(version string, p ocispecs.Platform) string {
	return fmt.Sprintf("golang.org/toolchain@v0.0.1-go%s.%s-%s", version, p.OS, toolchainArch(p))
}

// FetchToolchain downloads the Go toolchain for platform p through proxy,
// checked against sumdb by the go command, and returns its directory in
// the module cache (GOROOT).
func FetchToolchain(ctx context.Context, version string, p ocispecs.Platform, proxy, sumdb string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("berth fetches the Go toolchain with the go command, which is not on PATH: install Go (https://go.dev/dl) or give the service a builder image")
	}
	mod := ToolchainModule(version, p)
	tmp, err := os.MkdirTemp("", "berth-toolchain-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", mod)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOPROXY="+proxy, "GOSUMDB="+sumdb, "GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on")
	var out, stderr bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	var res struct {
		Dir   string
		Error string
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || runErr != nil || res.Error != "" {
		msg := strings.TrimSpace(res.Error + " " + stderr.String())
		return "", fmt.Errorf("download Go %s toolchain for %s/%s (%s) through %s: %s", version, p.OS, p.Architecture, mod, proxy, msg)
	}
	return res.Dir, nil
}

// hostPlatform is the platform of this machine, the embedded engine's.
var hostPlatform = platforms.Normalize(platforms.DefaultSpec())

// sameToolchain reports whether platforms a and b run the same Go
// toolchain image (amd64's variants do not change it).
func sameToolchain(a, b ocispecs.Platform) bool {
	return a.OS == b.OS && a.Architecture == b.Architecture && (a.Architecture == "amd64" || a.Variant == b.Variant)
}

// goToolchain is a builder's Go toolchain: its GOROOT, and the image it is
// packed into for engines with the oci-layout source.
type goToolchain struct {
	goroot string
	image  digest.Digest
	err    error
}

// prepareToolchain fetches the toolchain of the plan's Go version for
// platform p and packs it into an image under cacheDir. For the Docker
// engine's BuildKit, which has no oci-layout source, it makes an
// executable copy to send as a local source instead.
func prepareToolchain(ctx context.Context, pl *plan.Plan, p ocispecs.Platform, cacheDir string, local bool) goToolchain {
	goroot, err := FetchToolchain(ctx, pl.Go.Version, p, pl.Go.Proxy, pl.Go.SumDB)
	if err != nil {
		return goToolchain{err: err}
	}
	if local {
		goroot, err = executableToolchain(ctx, goroot, cacheDir)
		return goToolchain{goroot: goroot, err: err}
	}
	img, err := toolchainImage(ctx, goroot, toolchainImages(cacheDir), p)
	return goToolchain{goroot: goroot, image: img, err: err}
}

// usedCopy reports whether the toolchain copy dest is complete, and if so
// renews it. The caller holds the copies' lock.
func usedCopy(dest string) bool {
	if _, err := os.Stat(filepath.Join(dest, ".complete")); err != nil {
		return false
	}
	used(dest, time.Now()) // kept from trimToolchains
	return true
}

// toolchainImages is the OCI layout of packed toolchains under cacheDir.
func toolchainImages(cacheDir string) string { return filepath.Join(cacheDir, "toolchain-images") }

// executableToolchain returns a copy of the toolchain in the module cache
// whose programs are executable: `go mod download` extracts modules
// read-only and without execute bits. Other files are hard links, so the
// copy costs little; it is made once per version and platform.
//
// It holds the copies' lock, which trimToolchains takes too (see
// toolchainImage).
func executableToolchain(ctx context.Context, src, cacheDir string) (string, error) {
	unlock, err := toolchainLock(ctx, filepath.Join(cacheDir, "toolchains"))
	if err != nil {
		return "", err
	}
	defer unlock()
	dest := filepath.Join(cacheDir, "toolchains", filepath.Base(src))
	if usedCopy(dest) {
		return dest, nil
	}
	tmp, err := export.TempDir(dest)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(tmp, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		slash := filepath.ToSlash(rel)
		if strings.HasPrefix(slash, "bin/") || strings.HasPrefix(slash, "pkg/tool/") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o755)
		}
		if err := os.Link(p, out); err == nil {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dest)
	if err := os.Rename(tmp, dest); err != nil {
		return "", err
	}
	return dest, nil
}
