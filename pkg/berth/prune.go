package berth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// pruneStale removes from the output directory what a build of the whole
// project no longer makes: the binaries, bundles, Dockerfiles and units
// of services gone from the config, of platforms gone from a service, of
// an earlier version. Only berth's own kinds of files in berth's own
// directories go; a build of some targets prunes nothing.
func (b *builder) pruneStale(res *BuildResult) error {
	if b.proj != b.full || within(b.proj.Config.Dir, b.outDir) || within(b.proj.Module.Dir, b.outDir) {
		// An output directory that holds the project holds the user's
		// files too (--out .): nothing there is berth's alone.
		return nil
	}
	keep := map[string]bool{}
	for _, p := range append(append(append([]string(nil), res.Binaries...), res.Bundles...), res.Generated...) {
		for p != b.outDir && p != "/" && p != "." {
			keep[p] = true
			p = filepath.Dir(p)
		}
	}
	var errs []error
	prune := func(dir string, ours func(name string, isDir bool) bool) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if keep[p] || strings.HasPrefix(e.Name(), ".") || !ours(e.Name(), e.IsDir()) {
				continue
			}
			errs = append(errs, os.RemoveAll(p))
		}
	}
	dirs := func(name string, isDir bool) bool { return isDir }
	// bin/<service>/<os>_<arch>[_<variant>]/
	bin := filepath.Join(b.outDir, "bin")
	prune(bin, dirs)
	if ents, err := os.ReadDir(bin); err == nil {
		for _, e := range ents {
			if e.IsDir() && keep[filepath.Join(bin, e.Name())] {
				prune(filepath.Join(bin, e.Name()), dirs)
			}
		}
	}
	prune(filepath.Join(b.outDir, "bundle"), func(name string, isDir bool) bool {
		return !isDir && strings.HasSuffix(name, ".tar.gz")
	})
	prune(filepath.Join(b.outDir, "docker"), dirs)
	prune(filepath.Join(b.outDir, "systemd"), func(name string, isDir bool) bool {
		return !isDir && (strings.HasSuffix(name, ".service") || strings.HasSuffix(name, ".env"))
	})
	return errors.Join(errs...)
}

// within reports whether path p is dir or under it.
func within(p, dir string) bool {
	r, err := filepath.Rel(dir, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, "../")
}
