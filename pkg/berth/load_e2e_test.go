package berth

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// loadServices × loadPlatforms is the load test's project size.
const loadServices = 200

var loadPlatforms = []string{"linux/amd64", "linux/arm64"}

// writeLoadProject generates a module of n services, each a main package
// of its own over a shared internal package, and its berth config.
func writeLoadProject(t *testing.T, dir string, n int) {
	t.Helper()
	files := map[string]string{
		"go.mod": "module example.com/load\n\ngo 1.26.8\n",
		"internal/common/common.go": `package common

import (
	"fmt"
	"strings"
)

// Greeting is what every service says.
func Greeting(name string) string { return fmt.Sprintf("hello from %s", strings.ToUpper(name)) }
`,
	}
	var cue strings.Builder
	fmt.Fprintf(&cue, "package berth\n\nproject: \"load\"\n\ndefaults: {\n\tplatforms: [%q, %q]\n\tbase: \"static\"\n\tlimits: {cpu: 0.5, memory: \"64Mi\"}\n}\n\nservices: {\n", loadPlatforms[0], loadPlatforms[1])
	for i := range n {
		name := fmt.Sprintf("s%03d", i)
		files["cmd/"+name+"/main.go"] = fmt.Sprintf(`package main

import (
	"fmt"

	"example.com/load/internal/common"
)

func main() { fmt.Println(common.Greeting(%q), %d) }
`, name, i)
		fmt.Fprintf(&cue, "\t%s: main: \"./cmd/%s\"\n", name, name)
	}
	cue.WriteString("}\n")
	files["berth.cue"] = cue.String()
	for rel, body := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoad200Services builds a generated project of 200 services × 2
// platforms with the berth binary on its embedded engine: no failure,
// every binary and every image in place, and berth's own peak RSS bounded
// (the figure goes to BENCHMARKS.md).
func TestLoad200Services(t *testing.T) {
	dir := t.TempDir()
	writeLoadProject(t, dir, loadServices)
	berth := berthBinary(t)
	cmd := exec.Command(berth, "build", "--progress", "plain")
	cmd.Dir = dir
	cmd.Env = append(engineEnv(t), "SOURCE_DATE_EPOCH=1700000000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := out
		if len(tail) > 8000 {
			tail = tail[len(tail)-8000:]
		}
		t.Fatalf("berth build of %d services: %v\n%s", loadServices, err, tail)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rss := ru.Maxrss << 10 // kilobytes on Linux
	t.Logf("berth build of %d services × %d platforms: peak RSS %d MiB, user %.1f s, system %.1f s",
		loadServices, len(loadPlatforms), rss>>20, float64(ru.Utime.Nano())/1e9, float64(ru.Stime.Nano())/1e9)
	// 129 MiB measured here; a build that holds per-target data (every
	// binary, every definition) at once goes far over.
	if rss > 512<<20 {
		t.Errorf("berth's peak RSS was %d MiB, over 512 MiB", rss>>20)
	}

	for i := range loadServices {
		name := fmt.Sprintf("s%03d", i)
		for _, pf := range loadPlatforms {
			bin := filepath.Join(dir, "dist", "bin", name, strings.ReplaceAll(pf, "/", "_"), name)
			if st, err := os.Stat(bin); err != nil || st.Size() == 0 {
				t.Errorf("%s (%s): no binary: %v", name, pf, err)
			}
		}
	}
	top, im := layoutIndex(t, filepath.Join(dir, "dist", "oci"))
	if len(im.Manifests) != loadServices {
		t.Fatalf("the layout has %d images, want %d", len(im.Manifests), loadServices)
	}
	for _, d := range im.Manifests {
		idx, err := top.ImageIndex(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Manifests) != len(loadPlatforms) {
			t.Errorf("%s: %d platforms, want %d", d.Annotations["org.opencontainers.image.ref.name"], len(m.Manifests), len(loadPlatforms))
		}
	}
	// One image read back whole: its binary is the service's.
	img := image(t, filepath.Join(dir, "dist", "oci"), "s123:0.0.0-dev", "linux/arm64")
	if got := fileIn(t, img, "/s123"); len(got) == 0 {
		t.Error("s123's image has an empty binary")
	}
}
