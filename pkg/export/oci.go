package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/platforms"
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

// Manifest is an image manifest in an OCI store directory, its
// descriptor carrying the platform.
type Manifest struct {
	Store string
	Desc  ocispecs.Descriptor
}

// AssembleIndex writes into store a multi-platform image index of the
// manifests, in the order given, with every blob they reach, and returns
// its descriptor. The index is encoded as BuildKit encodes the indexes it
// exports, so an index assembled from one export of the whole project, or
// from several builders' exports, has the digest BuildKit gives the same
// images exported alone.
func AssembleIndex(store string, ms []Manifest) (ocispecs.Descriptor, error) {
	idx := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex, Manifests: make([]ocispecs.Descriptor, len(ms))}
	idx.SchemaVersion = 2
	seen := map[string]bool{}
	for i, m := range ms {
		if m.Desc.Platform == nil {
			return ocispecs.Descriptor{}, fmt.Errorf("manifest %s has no platform", m.Desc.Digest)
		}
		pf := platforms.Format(*m.Desc.Platform)
		if seen[pf] {
			return ocispecs.Descriptor{}, fmt.Errorf("two %s manifests in one index", pf)
		}
		seen[pf] = true
		idx.Manifests[i] = m.Desc
		if m.Store != store {
			if err := copyReachable(m.Store, store, m.Desc); err != nil {
				return ocispecs.Descriptor{}, err
			}
		}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	desc := ocispecs.Descriptor{MediaType: idx.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if _, err := os.Stat(BlobPath(store, desc)); err == nil {
		return desc, nil
	}
	if err := os.MkdirAll(filepath.Dir(BlobPath(store, desc)), 0o755); err != nil {
		return desc, err
	}
	return desc, WriteFile(BlobPath(store, desc), b, 0o644)
}

// copyReachable links (or copies) the blobs desc reaches from one store
// into another; blobs present already are kept.
func copyReachable(from, to string, desc ocispecs.Descriptor) error {
	blobs := map[string]bool{}
	if err := reach(from, desc, blobs); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(to, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	for _, hex := range sortedKeys(blobs) {
		src := filepath.Join(from, "blobs", "sha256", hex)
		dst := filepath.Join(to, "blobs", "sha256", hex)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.Link(src, dst); err == nil {
			continue
		}
		if err := copyFile(src, dst); err != nil {
			return err
		}
	}
	return nil
}

// AddImage copies into l the blobs an index or manifest in store reaches,
// and nothing else of the store.
func (l *Layout) AddImage(store string, desc ocispecs.Descriptor) error {
	return copyReachable(store, l.Dir, desc)
}

// GC removes from store every blob that none of roots reaches; a store
// kept between builds then holds what the last build made, not every
// binary ever built.
func GC(store string, roots []ocispecs.Descriptor) error {
	return gc(store, roots, time.Time{})
}

// GCBefore is GC for a store others may be adding to: it removes only
// unreached blobs last modified before cutoff, and no file being written
// (a dot file).
func GCBefore(store string, roots []ocispecs.Descriptor, cutoff time.Time) error {
	return gc(store, roots, cutoff)
}

func gc(store string, roots []ocispecs.Descriptor, cutoff time.Time) error {
	keep := map[string]bool{}
	for _, r := range roots {
		if err := reach(store, r, keep); err != nil {
			return err
		}
	}
	dir := filepath.Join(store, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		if !cutoff.IsZero() {
			info, err := e.Info()
			if err != nil || strings.HasPrefix(e.Name(), ".") || !info.ModTime().Before(cutoff) {
				continue
			}
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// BlobPath is where a store keeps the blob d.
func BlobPath(store string, d ocispecs.Descriptor) string {
	return filepath.Join(store, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

// Holds reports whether store has every blob desc reaches.
func Holds(store string, desc ocispecs.Descriptor) bool {
	blobs := map[string]bool{}
	if err := reach(store, desc, blobs); err != nil {
		return false
	}
	for hex := range blobs {
		if _, err := os.Stat(filepath.Join(store, "blobs", "sha256", hex)); err != nil {
			return false
		}
	}
	return true
}
