package berth

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"
)

// TestBuildersPerPlatform builds a two-platform service on two daemons,
// linux/arm64 on its own (named in the config's builders block) and
// linux/amd64 on the default one: each platform's steps come from its
// own daemon, and the assembled index is the one a single daemon gives.
func TestBuildersPerPlatform(t *testing.T) {
	armAddr := "unix://" + runningEngine(t, privateEngine(t))

	dir := copyTree(t, "../../examples/hello")
	appendFile(t, filepath.Join(dir, "berth.cue"), `
services: hello: platforms: ["linux/amd64", "linux/arm64"]
builders: "linux/arm64": "`+armAddr+`"
`)
	var mu sync.Mutex
	seen := map[string]map[string]bool{} // builder → compile steps it reported
	reg := testRegistry(t)
	split, _ := build(t, dir, func(o *BuildOptions) {
		o.Push = reg
		o.OCIArchive = true
		o.BuilderStatus = func(builder string, s *client.SolveStatus) {
			mu.Lock()
			defer mu.Unlock()
			for _, v := range s.Vertexes {
				if strings.Contains(v.Name, "] go build hello") && v.Completed != nil {
					if seen[builder] == nil {
						seen[builder] = map[string]bool{}
					}
					seen[builder][v.Name] = true
				}
			}
		}
	})
	if len(seen) != 2 {
		t.Fatalf("compile steps came from %d builders, want 2: %v", len(seen), seen)
	}
	for b, steps := range seen {
		want := "(linux/amd64)"
		if b == armAddr {
			want = "(linux/arm64)"
		}
		for s := range steps {
			if !strings.HasSuffix(s, want) {
				t.Errorf("%s ran %q", b, s)
			}
		}
	}
	for _, pf := range []string{"linux/amd64", "linux/arm64"} {
		img := image(t, split.Layout, "hello:0.0.0-dev", pf)
		fileIn(t, img, "/hello")
	}

	// The assembled index was pushed, and archived, as one.
	ref, err := name.ParseReference(reg+"/hello:0.0.0-dev", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != split.Images[0].Digest {
		t.Errorf("pushed %s, built %s", desc.Digest, split.Images[0].Digest)
	}
	if len(split.Archives) != 1 {
		t.Fatalf("archives: %v", split.Archives)
	}
	arch, err := layoutFromArchive(t, split.Archives[0])
	if err != nil {
		t.Fatal(err)
	}
	fileIn(t, image(t, arch, "hello:0.0.0-dev", "linux/arm64"), "/hello")

	// The same project on one daemon: the same index, byte for byte.
	one := copyTree(t, "../../examples/hello")
	appendFile(t, filepath.Join(one, "berth.cue"), `
services: hello: platforms: ["linux/amd64", "linux/arm64"]
`)
	whole, _ := build(t, one, nil)
	if split.Images[0].Digest != whole.Images[0].Digest {
		t.Errorf("index from two builders %s, from one %s", split.Images[0].Digest, whole.Images[0].Digest)
	}
	if len(split.Binaries) != 2 || len(whole.Binaries) != 2 {
		t.Fatalf("binaries %v vs %v", split.Binaries, whole.Binaries)
	}
	for i, b := range split.Binaries {
		x, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		y, _ := os.ReadFile(whole.Binaries[i])
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs from %s", b, whole.Binaries[i])
		}
	}
}

// layoutFromArchive unpacks an OCI archive into a layout directory.
func layoutFromArchive(t *testing.T, archive string) (string, error) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir, nil
		}
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", err
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", err
		}
	}
}
