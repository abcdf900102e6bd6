package berth

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip" // inflates a third faster than compress/gzip
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/llbgen"
)

// unitBinaries puts into dir, as <service>/<os_arch>/<binary>, the binary
// of every target of unit u taken from its image: the last layer of its
// manifest in the unit's store. It runs as soon as the unit's solve has
// exported, while the other units still build: with the platforms in
// units of their own (imageUnits), the first platform's binaries are out
// while the next one compiles. Extracted binaries are kept by layer
// digest, so a layer seen before costs a hard link.
func (b *builder) unitBinaries(ctx context.Context, dir string, u *imageUnit) error {
	eg, ctx := errgroup.WithContext(ctx)
	for _, t := range u.imgs {
		// Every image target with a binary: its layer serves the bundle
		// (writeBundles) whether or not its binary comes from it, so
		// bundles do not depend on how the binaries were exported.
		if !t.Plan.Outputs.Binary {
			continue
		}
		b.mu.Lock()
		m, ok := b.manifests[targetID(t)]
		b.mu.Unlock()
		eg.Go(func() error {
			if !ok {
				return fmt.Errorf("%s (%s): no image was exported", t.Plan.Service, t.Plan.Platform)
			}
			// Extracting (gunzip) is the slow part: one per core at a
			// time, across units.
			select {
			case b.extractSlots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			defer func() { <-b.extractSlots }()
			if err := ctx.Err(); err != nil {
				return err
			}
			return b.targetBinary(dir, t, m)
		})
	}
	return eg.Wait()
}

func (b *builder) targetBinary(dir string, t llbgen.Target, man export.Manifest) error {
	var m ocispecs.Manifest
	if err := readBlob(man.Store, man.Desc, &m); err != nil {
		return err
	}
	if len(m.Layers) == 0 {
		return fmt.Errorf("%s (%s): image without layers", t.Plan.Service, t.Plan.Platform)
	}
	layer := m.Layers[len(m.Layers)-1]
	if strings.Contains(layer.MediaType, "gzip") {
		b.mu.Lock()
		b.layers[targetID(t)] = export.Layer{Path: export.BlobPath(man.Store, layer), Digest: layer.Digest.String()}
		b.mu.Unlock()
	}
	if !b.fromImage(t) {
		return nil // exported as a file (see fromImage)
	}
	bin, err := b.extracted(man.Store, layer, t.Plan.BinaryName)
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
