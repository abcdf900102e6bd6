package berth

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip" // inflates a third faster than compress/gzip
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/llbgen"
)

// binariesFromImages puts into dir, as <service>/<os_arch>/<binary>, the
// binary of every target taken from its image: the last layer of the
// platform's manifest in the service's OCI store. Extracted binaries are
// kept by layer digest, so a layer seen before costs a hard link.
func (b *builder) binariesFromImages(dir string) error {
	// Extracting (gunzip) is the slow part: a service per core at a time.
	var eg errgroup.Group
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for _, si := range b.results {
		eg.Go(func() error { return b.serviceBinaries(dir, si) })
	}
	return eg.Wait()
}

func (b *builder) serviceBinaries(dir string, si *serviceImage) error {
	// Every image target with a binary: its layer serves the bundle
	// (writeBundles) whether or not its binary comes from it, so bundles
	// do not depend on how the binaries were exported.
	var targets []llbgen.Target
	for _, t := range b.images(si.service) {
		if t.Plan.Outputs.Binary && !b.eng.NoOCIExporter {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	var idx ocispecs.Index
	if err := readBlob(si.store, si.index, &idx); err != nil {
		return err
	}
	for _, t := range targets {
		var man *ocispecs.Descriptor
		for i, m := range idx.Manifests {
			if m.Platform != nil && m.Platform.OS == t.Image.Platform.OS && m.Platform.Architecture == t.Image.Platform.Architecture && m.Platform.Variant == t.Image.Platform.Variant {
				man = &idx.Manifests[i]
			}
		}
		if man == nil {
			return fmt.Errorf("%s: the exported index has no %s image", t.Plan.Service, t.Plan.Platform)
		}
		var m ocispecs.Manifest
		if err := readBlob(si.store, *man, &m); err != nil {
			return err
		}
		if len(m.Layers) == 0 {
			return fmt.Errorf("%s (%s): image without layers", t.Plan.Service, t.Plan.Platform)
		}
		layer := m.Layers[len(m.Layers)-1]
		if strings.Contains(layer.MediaType, "gzip") {
			b.mu.Lock()
			b.layers[targetID(t)] = export.Layer{Path: export.BlobPath(si.store, layer), Digest: layer.Digest.String()}
			b.mu.Unlock()
		}
		if !b.fromImage(t) {
			continue // exported as a file (see fromImage)
		}
		bin, err := b.extracted(si.store, layer, t.Plan.BinaryName)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", t.Plan.Service, t.Plan.Platform, err)
		}
		dst := filepath.Join(dir, t.Plan.Service, strings.ReplaceAll(t.Plan.Platform, "/", "_"), t.Plan.BinaryName)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Link(bin, dst); err != nil {
			data, rerr := os.ReadFile(bin)
			if rerr != nil {
				return rerr
			}
			if err := os.WriteFile(dst, data, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

func readBlob(store string, d ocispecs.Descriptor, v any) error {
	data, err := os.ReadFile(export.BlobPath(store, d))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// extracted returns the binary of a layer, extracting it once into the
// cache, named by the layer's digest.
func (b *builder) extracted(store string, layer ocispecs.Descriptor, name string) (string, error) {
	dst := filepath.Join(b.cacheDir, "binaries", layer.Digest.Encoded(), name)
	if _, err := os.Stat(dst); err == nil {
		used(filepath.Dir(dst), time.Now())
		return dst, nil
	}
	f, err := os.Open(export.BlobPath(store, layer))
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.Contains(layer.MediaType, "gzip") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", err
		}
		r = zr
	}
	want := strings.TrimPrefix(llbgen.ImagePath(name), "/")
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("the image's last layer has no %s", want)
		}
		if err != nil {
			return "", err
		}
		if strings.TrimPrefix(h.Name, "./") != want {
			continue
		}
		err = export.WriteFileFrom(dst, 0o755, func(w io.Writer) error {
			_, err := io.Copy(w, tr)
			return err
		})
		return dst, err
	}
}
