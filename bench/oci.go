package main

// Image sizes, read from berth's OCI layout and from the Dockerfile path's
// OCI tarballs: the sum of the layer sizes (compressed, as pushed) of one
// service's image for one platform, and the binary inside, to show the
// two paths ship the same program.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

type blobs func(digest string) ([]byte, error)

// imageInfo describes one platform's image of a service.
type imageInfo struct {
	LayerBytes int64
	Layers     int
	BinarySHA  string // of the file named binary in the image
	BinarySize int64
	Entries    []string // tar entries of every layer, in order
}

func layoutBlobs(dir string) blobs {
	return func(d string) ([]byte, error) {
		alg, hex, ok := strings.Cut(d, ":")
		if !ok {
			return nil, fmt.Errorf("bad digest %q", d)
		}
		return os.ReadFile(filepath.Join(dir, "blobs", alg, hex))
	}
}

// tarBlobs reads an OCI archive into memory (the images are small).
func tarBlobs(file string) ([]byte, blobs, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, nil, err
		}
		files[path.Clean(h.Name)] = b
	}
	idx, ok := files["index.json"]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no index.json", file)
	}
	return idx, func(d string) ([]byte, error) {
		alg, hex, _ := strings.Cut(d, ":")
		b, ok := files["blobs/"+alg+"/"+hex]
		if !ok {
			return nil, fmt.Errorf("%s: no blob %s", file, d)
		}
		return b, nil
	}, nil
}

// inspectImage walks index.json → the index named ref (any when "") →
// the platform's manifest → layers, and finds binary (a path in the
// image) in the layers.
func inspectImage(indexJSON []byte, get blobs, ref, platform, binary string) (imageInfo, error) {
	var info imageInfo
	var top ocispecs.Index
	if err := json.Unmarshal(indexJSON, &top); err != nil {
		return info, err
	}
	var desc *ocispecs.Descriptor
	for i, m := range top.Manifests {
		if ref == "" || m.Annotations[ocispecs.AnnotationRefName] == ref {
			desc = &top.Manifests[i]
			break
		}
	}
	if desc == nil {
		return info, fmt.Errorf("no image named %q", ref)
	}
	goos, arch, _ := strings.Cut(platform, "/")
	for desc.MediaType == ocispecs.MediaTypeImageIndex || desc.MediaType == "application/vnd.docker.distribution.manifest.list.v2+json" {
		b, err := get(desc.Digest.String())
		if err != nil {
			return info, err
		}
		var idx ocispecs.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return info, err
		}
		var next *ocispecs.Descriptor
		for i, m := range idx.Manifests {
			if m.Platform != nil && m.Platform.OS == goos && m.Platform.Architecture == arch {
				next = &idx.Manifests[i]
				break
			}
		}
		if next == nil {
			return info, fmt.Errorf("no %s image in %s", platform, desc.Digest)
		}
		desc = next
	}
	b, err := get(desc.Digest.String())
	if err != nil {
		return info, err
	}
	var m ocispecs.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return info, err
	}
	binary = strings.TrimPrefix(binary, "/")
	for _, l := range m.Layers {
		info.LayerBytes += l.Size
		info.Layers++
		blob, err := get(l.Digest.String())
		if err != nil {
			return info, err
		}
		sum, size, names := scanLayer(blob, binary)
		if sum != "" {
			info.BinarySHA, info.BinarySize = sum, size
		}
		info.Entries = append(info.Entries, names...)
	}
	return info, nil
}

// scanLayer lists a gzipped layer's entries and hashes the file name.
func scanLayer(blob []byte, name string) (sum string, size int64, names []string) {
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		return "", 0, nil
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return sum, size, names
		}
		names = append(names, h.Name)
		if strings.TrimPrefix(path.Clean(h.Name), "/") != name {
			continue
		}
		hs := sha256.New()
		n, err := io.Copy(hs, tr)
		if err != nil {
			return sum, size, names
		}
		sum, size = hex.EncodeToString(hs.Sum(nil)), n
	}
}
