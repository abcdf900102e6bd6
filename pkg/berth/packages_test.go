package berth

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/berthbuild/berth/pkg/plan"
)

// go list's answer: each service's files, and the packages outside the
// standard library that more than one service imports (shared), with the
// module files they are built from. A main package that builds on one
// platform only is listed on that platform only.
func TestGoListShared(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":                 "module example.com/m\n\ngo 1.21\n",
		"internal/lib/lib.go":    "package lib\n\nimport \"example.com/m/internal/base\"\n\nfunc Name() string { return base.Name() }\n",
		"internal/base/base.go":  "package base\n\nimport \"strings\"\n\nfunc Name() string { return strings.ToUpper(\"b\") }\n",
		"internal/only/only.go":  "package only\n\nimport \"fmt\"\n\nfunc Name() string { return fmt.Sprint(1) }\n",
		"internal/twice/tw.go":   "package twice\n\nfunc Name() string { return \"t\" }\n",
		"cmd/a/main.go":          "package main\n\nimport \"example.com/m/internal/lib\"\n\nfunc main() { println(lib.Name()) }\n",
		"cmd/b/main.go":          "package main\n\nimport \"example.com/m/internal/lib\"\n\nfunc main() { println(lib.Name()) }\n",
		"cmd/c/main.go":          "package main\n\nimport \"example.com/m/internal/only\"\n\nfunc main() { println(only.Name()) }\n",
		"cmd/d/main.go":          "package main\n\nimport \"example.com/m/internal/twice\"\n\nfunc main() { println(twice.Name()) }\n",
		"cmd/d/other_arm64.go":   "package main\n",
		"internal/lib/x_test.go": "package lib\n",
		"cmd/f/main_arm64.go":    "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println() }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pl := &plan.Plan{Services: []string{"a", "b", "c", "d", "e"}}
	for _, s := range [][2]string{{"a", "./cmd/a"}, {"b", "./cmd/b"}, {"c", "./cmd/c"}, {"d", "./cmd/d"}, {"e", "./cmd/d"}} {
		for _, arch := range []string{"amd64", "arm64"} {
			if s[0] == "b" && arch == "arm64" {
				continue // b builds for amd64 only
			}
			pl.Targets = append(pl.Targets, plan.Target{Service: s[0], Main: s[1], Platform: "linux/" + arch, GOOS: "linux", GOARCH: arch})
		}
	}
	pl.Services = append(pl.Services, "f") // no Go file of cmd/f builds for amd64
	pl.Targets = append(pl.Targets, plan.Target{Service: "f", Main: "./cmd/f", Platform: "linux/arm64", GOOS: "linux", GOARCH: "arm64"})
	got, err := goList(context.Background(), dir, pl)
	if err != nil {
		t.Fatal(err)
	}
	// lib and its dependency base: a and b, on amd64 (b builds for no
	// other platform); twice: d and e, one main package that two
	// services build. only: c alone.
	for pf, want := range map[string][]string{
		"linux/amd64": {"example.com/m/internal/base", "example.com/m/internal/lib", "example.com/m/internal/twice"},
		"linux/arm64": {"example.com/m/internal/twice"},
	} {
		if !reflect.DeepEqual(got.Shared[pf], want) {
			t.Errorf("shared on %s: %q, want %q", pf, got.Shared[pf], want)
		}
	}
	if wantFiles := []string{"internal/base/base.go", "internal/lib/lib.go", "internal/twice/tw.go"}; !reflect.DeepEqual(got.SharedFiles, wantFiles) {
		t.Errorf("shared files %q, want %q", got.SharedFiles, wantFiles)
	}
	if w := []string{"cmd/c/main.go", "internal/only/only.go"}; !reflect.DeepEqual(got.Include["c"], w) {
		t.Errorf("c's files %q, want %q", got.Include["c"], w)
	}
	if w := []string{"cmd/d/main.go", "cmd/d/other_arm64.go", "internal/twice/tw.go"}; !reflect.DeepEqual(got.Include["e"], w) {
		t.Errorf("e's files %q, want %q", got.Include["e"], w)
	}
	if w := []string{"cmd/f/main_arm64.go"}; !reflect.DeepEqual(got.Include["f"], w) {
		t.Errorf("f's files %q, want %q", got.Include["f"], w)
	}
}
