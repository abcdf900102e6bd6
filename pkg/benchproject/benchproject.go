// Package benchproject generates the many-service project that berth's
// scale benchmarks load, plan and marshal: n trivial main packages, each
// a service × 3 platforms with its own args, env, port and limits.
// It is a fixture for benchmarks (pkg/config, pkg/berth, bench/), not part
// of berth's API.
package benchproject

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Config returns the project's berth.cue.
func Config(n int) string {
	var b strings.Builder
	b.WriteString("package berth\n\nproject: \"big\"\nversion: \"1.0.0\"\n")
	b.WriteString("defaults: {\n\tplatforms: [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]\n\tlimits: {cpu: 1, memory: \"128Mi\"}\n}\n")
	b.WriteString("services: {\n")
	for i := 0; i < n; i++ {
		name := Service(i)
		fmt.Fprintf(&b, "\t%q: {\n\t\tmain: \"./cmd/%s\"\n\t\targs: [\"--id=%d\"]\n\t\tenv: {ID: \"%d\"}\n\t\tports: [%d]\n\t\tlimits: memory: \"256Mi\"\n\t}\n", name, name, i, i, 8000+i%1000)
	}
	b.WriteString("}\n")
	return b.String()
}

// Service names the i-th service.
func Service(i int) string { return fmt.Sprintf("svc-%04d", i) }

// Files returns every file of the project (slash-separated path →
// content): go.mod for goVersion, a main package per service, berth.cue.
func Files(n int, goVersion string) map[string]string {
	files := map[string]string{
		"go.mod":    "module example.com/big\n\ngo " + goVersion + "\n",
		"berth.cue": Config(n),
	}
	for i := 0; i < n; i++ {
		files["cmd/"+Service(i)+"/main.go"] = "package main\n\nfunc main() {}\n"
	}
	return files
}

// Write writes Files(n, goVersion) under dir.
func Write(dir string, n int, goVersion string) error {
	for name, body := range Files(n, goVersion) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
