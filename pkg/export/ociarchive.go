package export

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteOCIArchive writes, atomically, an OCI layout tarball holding the
// image index desc from store, named ref, and every blob it reaches. The
// tarball is deterministic: entries in a fixed order, times set to epoch.
func WriteOCIArchive(path, store string, desc ocispecs.Descriptor, ref string, epoch time.Time) error {
	blobs := map[string]bool{}
	if err := reach(store, desc, blobs); err != nil {
		return err
	}
	names := make([]string, 0, len(blobs))
	for b := range blobs {
		names = append(names, b)
	}
	sort.Strings(names)
	top := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex, Manifests: []ocispecs.Descriptor{desc}}
	top.SchemaVersion = 2
	top.Manifests[0].Annotations = map[string]string{RefName: ref}
	idx, err := json.Marshal(top)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return WriteFileFrom(path, 0o644, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		hdr := func(name string, size int64, dir bool) *tar.Header {
			h := &tar.Header{Name: name, Size: size, Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
			if dir {
				h.Mode, h.Typeflag = 0o755, tar.TypeDir
			}
			return h
		}
		file := func(name string, b []byte) error {
			if err := tw.WriteHeader(hdr(name, int64(len(b)), false)); err != nil {
				return err
			}
			_, err := tw.Write(b)
			return err
		}
		if err := file(ocispecs.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
		if err := file("index.json", idx); err != nil {
			return err
		}
		for _, d := range []string{"blobs/", "blobs/sha256/"} {
			if err := tw.WriteHeader(hdr(d, 0, true)); err != nil {
				return err
			}
		}
		for _, n := range names {
			f, err := os.Open(filepath.Join(store, "blobs", "sha256", n))
			if err != nil {
				return err
			}
			st, err := f.Stat()
			if err == nil {
				err = tw.WriteHeader(hdr("blobs/sha256/"+n, st.Size(), false))
			}
			if err == nil {
				_, err = io.Copy(tw, f)
			}
			f.Close()
			if err != nil {
				return err
			}
		}
		return tw.Close()
	})
}

// reach adds the blobs desc reaches in store (by hex digest) to seen.
func reach(store string, desc ocispecs.Descriptor, seen map[string]bool) error {
	hex := desc.Digest.Encoded()
	if seen[hex] {
		return nil
	}
	seen[hex] = true
	switch desc.MediaType {
	case ocispecs.MediaTypeImageIndex, ocispecs.MediaTypeImageManifest,
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json":
	default:
		return nil
	}
	b, err := os.ReadFile(BlobPath(store, desc))
	if err != nil {
		return err
	}
	var m struct {
		Manifests []ocispecs.Descriptor `json:"manifests"`
		Config    *ocispecs.Descriptor  `json:"config"`
		Layers    []ocispecs.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	kids := append(m.Manifests, m.Layers...)
	if m.Config != nil {
		kids = append(kids, *m.Config)
	}
	for _, k := range kids {
		if err := reach(store, k, seen); err != nil {
			return err
		}
	}
	return nil
}
