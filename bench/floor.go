package main

// The floor: the host's own `go build` of every target with the flags
// berth's plan gives them (project.Flags), one invocation per platform
// (go build runs the packages of one invocation in parallel itself), no
// containers, no images.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type floor struct {
	proj     *project
	dir      string // GOCACHE, GOMODCACHE and outputs live here
	platform []string
	trash    *trash
}

func (f *floor) gocache() string    { return filepath.Join(f.dir, "gocache") }
func (f *floor) gomodcache() string { return filepath.Join(f.dir, "gomodcache") }

// reset empties the build cache (and the module cache, which only holds
// the -deps modules: the floor downloads them like the other paths).
func (f *floor) reset() error {
	for _, d := range []string{f.gocache(), f.gomodcache(), filepath.Join(f.dir, "out")} {
		if err := f.trash.discard(d); err != nil {
			return err
		}
	}
	return nil
}

func (f *floor) build() (sample, error) {
	var total sample
	for i, pf := range f.platform {
		goos, goarch, _ := strings.Cut(pf, "/")
		out := filepath.Join(f.dir, "out", goos+"_"+goarch) + string(filepath.Separator)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return total, err
		}
		args := append(append([]string{"build"}, f.proj.Flags...), "-o", out, "./cmd/...")
		cmd := exec.Command("go", args...)
		cmd.Dir = f.proj.Dir
		cmd.Env = append(os.Environ(),
			"CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch,
			"GOCACHE="+f.gocache(), "GOMODCACHE="+f.gomodcache(),
			"GOFLAGS=-mod=readonly -modcacherw", "GOTOOLCHAIN=local")
		var stderr strings.Builder
		cmd.Stdout = &stderr
		cmd.Stderr = &stderr
		s, err := runMeasured(cmd, nil)
		if err != nil {
			return total, fmt.Errorf("go build for %s: %v\n%s", pf, err, stderr.String())
		}
		if i == 0 {
			total = s
		} else {
			total = combine(total, s)
		}
	}
	total.Rebuilt = -1
	return total, nil
}
