package berth

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/export"
)

// The toolchain as an image. A local source is walked, file by file, on
// every solve that uses it, to find what changed: for the 12,000 files of
// a Go toolchain that is most of a warm build. A toolchain never changes,
// so berth packs it once into a one-layer image in an OCI layout under
// its cache, and the steps mount that image, known by digest: the engine
// fetches it through the session the first time and never looks again.

// toolchainMarker starts the name of the file that records a packed
// toolchain's manifest in the store.
const toolchainMarker = "berth-"

// ToolchainStoreID names the OCI store of toolchain images in a solve's
// session.
const ToolchainStoreID = "berth-toolchains"

// markerImage is the manifest marker names, if the store at store holds
// it; zero when it does not or the marker is broken (its image is packed
// again). The error is only the marker's read error. Builds
// (packedToolchain) and trims (trimToolchainImages) read markers alike.
func markerImage(store, marker string) (ocispecs.Descriptor, error) {
	b, err := os.ReadFile(marker)
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if desc := (ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: d}); err == nil && export.Holds(store, desc) {
		return desc, nil
	}
	return ocispecs.Descriptor{}, nil
}

// packedToolchain is the manifest digest marker records, if the store at
// store holds that image, and renews the marker; "" when the toolchain is
// to be packed. The caller holds the store's lock.
func packedToolchain(store, marker string) digest.Digest {
	desc, err := markerImage(store, marker)
	if err != nil || desc.Digest == "" {
		return ""
	}
	used(marker, time.Now()) // kept from trimToolchains
	return desc.Digest
}

// toolchainImage packs goroot (without toolchainExcludes) into an image
// for platform p in the layout at store, once, and returns the manifest's
// digest. goroot may be the read-only directory `go mod download`
// extracts: the layer sets its own modes (programs under bin/ and
// pkg/tool/ executable). The layer is a tar with fixed owners, modes and
// times, compressed with zstd at its fastest level: the same toolchain
// gives the same digest on every machine (the encoder's output does not
// depend on its concurrency). zstd, not gzip: the engine fetches the
// layer through the session before the first compile and unpacks it on
// one core; zstd sends a third of the 110 MB and decompresses on other
// cores, and packing it costs 0.3 s more than a plain tar, once per machine.
// The image never leaves berth and its engine (BuildKit reads zstd
// layers since v0.10), so gzip's wider reach buys nothing here.
//
// It holds the store's lock, which trimToolchains takes too: a toolchain
// found here is renewed before a trim can judge it, a toolchain being
// packed loses no blob to a trim, and concurrent builds pack it once.
func toolchainImage(ctx context.Context, goroot, store string, p ocispecs.Platform) (digest.Digest, error) {
	unlock, err := toolchainLock(ctx, store)
	if err != nil {
		return "", err
	}
	defer unlock()
	key := sha256.Sum256([]byte(fmt.Sprintf("berth toolchain image v4\n%s\n%q\n%s/%s", filepath.Base(goroot), toolchainExcludes, p.OS, p.Architecture)))
	marker := filepath.Join(store, toolchainMarker+hex.EncodeToString(key[:8]))
	if d := packedToolchain(store, marker); d != "" {
		return d, nil
	}
	if err := os.MkdirAll(filepath.Join(store, "blobs", "sha256"), 0o755); err != nil {
		return "", err
	}
	pm, err := patternmatcher.New(toolchainExcludes)
	if err != nil {
		return "", err
	}
	// The layer, written to a temporary file while hashed.
	tmp, err := os.CreateTemp(filepath.Join(store, "blobs", "sha256"), ".layer-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h, diff := sha256.New(), sha256.New() // of the blob, of the tar
	zw, err := zstd.NewWriter(io.MultiWriter(tmp, h), zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		tmp.Close()
		return "", err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	epoch := time.Unix(0, 0).UTC()
	err = filepath.WalkDir(goroot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(goroot, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip, _ := pm.MatchesOrParentMatches(rel); skip {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if d.IsDir() || strings.HasPrefix(rel, "bin/") || strings.HasPrefix(rel, "pkg/tool/") {
			mode = 0o755
		}
		hdr := &tar.Header{Name: rel, ModTime: epoch, Format: tar.FormatPAX, Mode: mode}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		default:
			return nil
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		tmp.Close()
		return "", fmt.Errorf("pack the Go toolchain %s: %w", goroot, err)
	}
	layer := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	st, err := os.Stat(tmp.Name())
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(store, "blobs", "sha256", layer.Encoded())); err != nil {
		return "", err
	}
	cfg := ocispecs.Image{
		Platform: ocispecs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant},
		RootFS:   ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.NewDigestFromBytes(digest.SHA256, diff.Sum(nil))}},
	}
	cfgDesc, err := putJSON(store, ocispecs.MediaTypeImageConfig, cfg)
	if err != nil {
		return "", err
	}
	man := ocispecs.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispecs.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispecs.Descriptor{{MediaType: ocispecs.MediaTypeImageLayerZstd, Digest: layer, Size: st.Size()}},
	}
	manDesc, err := putJSON(store, ocispecs.MediaTypeImageManifest, man)
	if err != nil {
		return "", err
	}
	return manDesc.Digest, export.WriteFile(marker, []byte(manDesc.Digest.String()), 0o644)
}

func putJSON(store, mediaType string, v any) (ocispecs.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	d := ocispecs.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	return d, export.WriteFile(filepath.Join(store, "blobs", "sha256", d.Digest.Encoded()), b, 0o644)
}

// toolchainStore opens the toolchain images' layout as a content store
// for a solve's session.
func toolchainStore(store string) (content.Store, error) {
	return local.NewStore(store)
}
