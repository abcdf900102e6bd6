package berth

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// compiler is 4 MB that compress but not to nothing: enough blocks for
// the zstd encoder to spread over its goroutines.
func compiler() string {
	var b strings.Builder
	x := uint32(1)
	for b.Len() < 4<<20 {
		x = x*1664525 + 1013904223
		fmt.Fprintf(&b, "%08x %d\n", x>>20, b.Len()%97)
	}
	return b.String()
}

// fakeGoroot writes a toolchain as `go mod download` leaves it: every
// file and directory read-only, no execute bits.
func fakeGoroot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "toolchain@v0.0.1-go1.26.8.linux-amd64")
	for name, body := range map[string]string{
		"VERSION":                          "go1.26.8",
		"bin/go":                           "go",
		"bin/gofmt":                        "gofmt",
		"pkg/tool/linux_amd64/compile":     compiler(),
		"pkg/tool/linux_amd64/vet":         "vet",
		"src/fmt/print.go":                 "package fmt",
		"src/fmt/print_test.go":            "package fmt",
		"src/fmt/testdata/x.txt":           "x",
		"src/cmd/go/main.go":               "package main",
		"src/runtime/race/race.go":         "package race",
		"src/runtime/race/race_linux.syso": "syso",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if d.IsDir() {
			defer os.Chmod(p, 0o555)
		}
		return nil
	})
	t.Cleanup(func() {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return root
}

// TestToolchainImage: the layer holds what builds read, with modes of its
// own (programs executable), and the same toolchain gives the same digest.
func TestToolchainImage(t *testing.T) {
	goroot := fakeGoroot(t)
	pf := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	store := t.TempDir()
	d, err := toolchainImage(context.Background(), goroot, store, pf)
	if err != nil {
		t.Fatal(err)
	}
	var man ocispecs.Manifest
	if err := readBlob(store, ocispecs.Descriptor{Digest: d}, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.Layers) != 1 || man.Layers[0].MediaType != ocispecs.MediaTypeImageLayerZstd {
		t.Fatalf("layers %+v, want one zstd layer", man.Layers)
	}
	blob, err := os.ReadFile(filepath.Join(store, "blobs", "sha256", man.Layers[0].Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(blob); got != man.Layers[0].Digest || int64(len(blob)) != man.Layers[0].Size {
		t.Fatalf("the layer blob is %s (%d bytes), its descriptor says %s (%d)", got, len(blob), man.Layers[0].Digest, man.Layers[0].Size)
	}
	zr, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tarball, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var cfg ocispecs.Image
	if err := readBlob(store, man.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := []digest.Digest{digest.FromBytes(tarball)}; !reflect.DeepEqual(cfg.RootFS.DiffIDs, want) {
		t.Errorf("config's diff IDs %v, want the tar's digest %v", cfg.RootFS.DiffIDs, want)
	}
	got := map[string]int64{}
	eachTarEntry(t, bytes.NewReader(tarball), func(h *tar.Header, _ io.Reader) {
		if h.Typeflag == tar.TypeReg {
			got[h.Name] = h.Mode
		}
	})
	want := map[string]int64{
		"VERSION":                      0o644,
		"bin/go":                       0o755,
		"pkg/tool/linux_amd64/compile": 0o755,
		"src/fmt/print.go":             0o644,
		"src/runtime/race/race.go":     0o644,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer files (name → mode):\n got %v\nwant %v", got, want)
	}
	// Packed again elsewhere, on a machine of another size (the encoder
	// runs on every core): the same digest.
	for _, procs := range []int{1, 4} {
		prev := runtime.GOMAXPROCS(procs)
		d2, err := toolchainImage(context.Background(), goroot, t.TempDir(), pf)
		runtime.GOMAXPROCS(prev)
		if err != nil || d2 != d {
			t.Errorf("packed with GOMAXPROCS=%d: %s, %v; want %s", procs, d2, err, d)
		}
	}
	// Asked again: the packed image is reused, not written anew.
	layer := filepath.Join(store, "blobs", "sha256", man.Layers[0].Digest.Encoded())
	before, err := os.Stat(layer)
	if err != nil {
		t.Fatal(err)
	}
	if d3, err := toolchainImage(context.Background(), goroot, store, pf); err != nil || d3 != d {
		t.Fatalf("third pack: %s, %v", d3, err)
	}
	if after, err := os.Stat(layer); err != nil || !os.SameFile(before, after) {
		t.Errorf("the layer was written again: %v", err)
	}
}
