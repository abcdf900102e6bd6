package export

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// RefName is the annotation that names an index in an OCI layout.
const RefName = ocispecs.AnnotationRefName

// Layout is an OCI image layout being assembled in a temporary directory.
type Layout struct {
	Dir       string
	manifests []ocispecs.Descriptor
}

// NewLayout starts a layout in dir.
func NewLayout(dir string) (*Layout, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	return &Layout{Dir: dir}, nil
}

// AddStore copies the blobs of another layout directory (as written by
// BuildKit's oci exporter with tar=false) into l; blobs are content
// addressed, so a blob present already is kept.
func (l *Layout) AddStore(dir string) error {
	src := filepath.Join(dir, "blobs", "sha256")
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		dst := filepath.Join(l.Dir, "blobs", "sha256", e.Name())
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.Link(filepath.Join(src, e.Name()), dst); err == nil {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), dst); err != nil {
			return err
		}
	}
	return nil
}

// AddIndex names a descriptor (of an image index or manifest whose blobs
// are in l) as ref.
func (l *Layout) AddIndex(desc ocispecs.Descriptor, ref string) {
	d := desc
	d.Annotations = map[string]string{RefName: ref}
	for k, v := range desc.Annotations {
		if k != RefName {
			d.Annotations[k] = v
		}
	}
	l.manifests = append(l.manifests, d)
}

// Finish writes oci-layout and index.json, index entries sorted by name.
func (l *Layout) Finish() error {
	sort.Slice(l.manifests, func(i, j int) bool {
		return l.manifests[i].Annotations[RefName] < l.manifests[j].Annotations[RefName]
	})
	idx := ocispecs.Index{
		MediaType: ocispecs.MediaTypeImageIndex,
		Manifests: l.manifests,
	}
	idx.SchemaVersion = 2
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFile(filepath.Join(l.Dir, "index.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return WriteFile(filepath.Join(l.Dir, ocispecs.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n"), 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFileFrom(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// ReadDescriptor decodes the descriptor BuildKit returns for an export.
func ReadDescriptor(b []byte) (ocispecs.Descriptor, error) {
	var d ocispecs.Descriptor
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("image descriptor: %w", err)
	}
	return d, nil
}

// Part is one builder's share of a multi-platform image: an image index
// in an OCI store directory.
type Part struct {
	Store string
	Index ocispecs.Descriptor
}

// MergeIndexes assembles one image index from the manifests of the parts'
// indexes, ordered by platform as in order ("linux/amd64", ...), writes
// it and every blob of the parts into store, and returns its descriptor.
// The index is encoded as BuildKit encodes the indexes it exports, so an
// image built in parts has the digest it has when one builder builds it.
func MergeIndexes(store string, parts []Part, order []string) (ocispecs.Descriptor, error) {
	var merged ocispecs.Index
	rank := map[string]int{}
	for i, pf := range order {
		rank[pf] = i
	}
	for i, p := range parts {
		var idx ocispecs.Index
		b, err := os.ReadFile(blobFile(p.Store, p.Index))
		if err != nil {
			return ocispecs.Descriptor{}, err
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return ocispecs.Descriptor{}, fmt.Errorf("index %s in %s: %w", p.Index.Digest, p.Store, err)
		}
		if i == 0 {
			merged = idx
			merged.Manifests = nil
		}
		for _, m := range idx.Manifests {
			if m.Platform == nil {
				return ocispecs.Descriptor{}, fmt.Errorf("index %s in %s: a manifest without a platform", p.Index.Digest, p.Store)
			}
			if _, ok := rank[platformString(*m.Platform)]; !ok {
				return ocispecs.Descriptor{}, fmt.Errorf("index %s in %s: unexpected platform %s", p.Index.Digest, p.Store, platformString(*m.Platform))
			}
			merged.Manifests = append(merged.Manifests, m)
		}
	}
	sort.SliceStable(merged.Manifests, func(i, j int) bool {
		return rank[platformString(*merged.Manifests[i].Platform)] < rank[platformString(*merged.Manifests[j].Platform)]
	})
	for i := 1; i < len(merged.Manifests); i++ {
		if platformString(*merged.Manifests[i].Platform) == platformString(*merged.Manifests[i-1].Platform) {
			return ocispecs.Descriptor{}, fmt.Errorf("two builders built %s", platformString(*merged.Manifests[i].Platform))
		}
	}
	b, err := json.MarshalIndent(merged, "", "  ")
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	desc := ocispecs.Descriptor{MediaType: merged.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	l := &Layout{Dir: store}
	if err := os.MkdirAll(filepath.Join(store, "blobs", "sha256"), 0o755); err != nil {
		return desc, err
	}
	for _, p := range parts {
		if err := l.AddStore(p.Store); err != nil {
			return desc, err
		}
	}
	if err := WriteFile(blobFile(store, desc), b, 0o644); err != nil {
		return desc, err
	}
	return desc, nil
}

func blobFile(store string, d ocispecs.Descriptor) string {
	return filepath.Join(store, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

func platformString(p ocispecs.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
