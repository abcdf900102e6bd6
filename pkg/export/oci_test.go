package export

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// putBlob writes b into store's blobs and returns its descriptor.
func putBlob(t *testing.T, store, mediaType string, b []byte) ocispecs.Descriptor {
	t.Helper()
	d := ocispecs.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	p := BlobPath(store, d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// partStore writes a one-platform image (layer, config, manifest) and an
// index of it, as BuildKit's oci exporter does, and returns the index's
// descriptor and the manifest's.
func partStore(t *testing.T, store string, pf ocispecs.Platform) (ocispecs.Descriptor, ocispecs.Descriptor) {
	layer := putBlob(t, store, ocispecs.MediaTypeImageLayerGzip, []byte("layer "+pf.Architecture))
	cfg := putBlob(t, store, ocispecs.MediaTypeImageConfig, []byte(`{"architecture":"`+pf.Architecture+`"}`))
	m := ocispecs.Manifest{MediaType: ocispecs.MediaTypeImageManifest, Config: cfg, Layers: []ocispecs.Descriptor{layer}}
	m.SchemaVersion = 2
	mb, _ := json.MarshalIndent(m, "", "  ")
	md := putBlob(t, store, ocispecs.MediaTypeImageManifest, mb)
	md.Platform = &pf
	idx := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex, Manifests: []ocispecs.Descriptor{md}}
	idx.SchemaVersion = 2
	ib, _ := json.MarshalIndent(idx, "", "  ")
	return putBlob(t, store, ocispecs.MediaTypeImageIndex, ib), md
}

func TestAssembleIndex(t *testing.T) {
	dir := t.TempDir()
	amd, arm := filepath.Join(dir, "amd"), filepath.Join(dir, "arm")
	amdIdx, amdM := partStore(t, amd, ocispecs.Platform{OS: "linux", Architecture: "amd64"})
	_, armM := partStore(t, arm, ocispecs.Platform{OS: "linux", Architecture: "arm64"})
	store := amd // one of the stores is the destination, as with one builder
	desc, err := AssembleIndex(store, []Manifest{{amd, amdM}, {arm, armM}})
	if err != nil {
		t.Fatal(err)
	}
	want := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex, Manifests: []ocispecs.Descriptor{amdM, armM}}
	want.SchemaVersion = 2
	wb, _ := json.MarshalIndent(want, "", "  ")
	if desc.Digest != digest.FromBytes(wb) {
		t.Errorf("assembled index %s, want the encoding of BuildKit's %s", desc.Digest, digest.FromBytes(wb))
	}
	for _, d := range []ocispecs.Descriptor{desc, amdM, armM} {
		if _, err := os.Stat(BlobPath(store, d)); err != nil {
			t.Errorf("blob missing from the store: %v", err)
		}
	}
	if _, err := AssembleIndex(store, []Manifest{{amd, amdM}, {amd, amdM}}); err == nil {
		t.Error("a platform twice was accepted")
	}

	// GC keeps what the index reaches and drops the rest (the part's own
	// one-platform index).
	if err := GC(store, []ocispecs.Descriptor{desc}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(BlobPath(store, amdIdx)); !os.IsNotExist(err) {
		t.Errorf("an unreachable blob survived: %v", err)
	}
	for _, d := range []ocispecs.Descriptor{desc, amdM, armM} {
		if _, err := os.Stat(BlobPath(store, d)); err != nil {
			t.Errorf("GC dropped a reachable blob: %v", err)
		}
	}

	// The archive of the merged image holds what it reaches, nothing else.
	archive := filepath.Join(dir, "a", "svc.oci.tar")
	epoch := time.Unix(1700000000, 0)
	if err := WriteOCIArchive(archive, store, desc, "svc:1.0.0", epoch); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tarEntries(t, f, func(h *tar.Header, _ io.Reader) {
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: time %v", h.Name, h.ModTime)
		}
		names = append(names, h.Name)
	})
	if len(names) != 2+2+7 { // oci-layout, index.json, 2 dirs, index + 2×(manifest, config, layer)
		t.Errorf("archive entries: %v", names)
	}
	if !reflect.DeepEqual(names[:2], []string{"oci-layout", "index.json"}) {
		t.Errorf("archive starts with %v", names[:2])
	}
}
