package export

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

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
