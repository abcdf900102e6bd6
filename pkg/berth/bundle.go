package berth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/plan"
	"github.com/berthbuild/berth/pkg/systemd"
)

// BundleName is the bare-metal bundle of a target.
func BundleName(pl *plan.Plan, t plan.Target) string {
	return fmt.Sprintf("%s_%s_%s.tar.gz", t.Service, plan.ImageTag(pl.Version), strings.ReplaceAll(t.Platform, "/", "_"))
}

// writeBundles writes, for every linux target with a binary and a unit,
// a tarball with the binary, the unit, the env file and an install script.
// A binary from its image's layer (layers, by service/platform) is not
// compressed again: the bundle ends with that layer (export.Layer).
func writeBundles(p *Project, outDir string, side map[string][]byte, seen memo, layers map[string]export.Layer) ([]string, error) {
	pl := p.Plan
	mtime := time.Unix(pl.SourceDateEpoch, 0).UTC()
	var out []string
	type job struct {
		dest  string
		bin   string // read when the bundle is written: binaries can be many
		files []export.File
		layer *export.Layer
	}
	var jobs []job
	for _, t := range pl.Targets {
		if t.GOOS != "linux" || !t.Outputs.Binary || !t.Outputs.Systemd {
			continue
		}
		bin := filepath.Join(outDir, "bin", t.Service, strings.ReplaceAll(t.Platform, "/", "_"), t.BinaryName)
		unitName := path.Base(t.Paths.Unit)
		files := []export.File{
			{Name: t.BinaryName, Mode: 0o755},
			{Name: unitName, Mode: 0o644, Data: side[t.Paths.Unit]},
		}
		envPath, err := systemd.EnvFile(t, systemd.Options{Project: pl.Project})
		if err != nil {
			return nil, err
		}
		envName := ""
		if env, ok := side[strings.TrimSuffix(t.Paths.Unit, ".service")+".env"]; ok {
			envName = t.Service + ".env"
			files = append(files, export.File{Name: envName, Mode: 0o600, Data: env})
		}
		files = append(files, export.File{Name: "install.sh", Mode: 0o755, Data: installScript(t, unitName, envName, envPath)})
		dest := filepath.Join(outDir, "bundle", BundleName(pl, t))
		j := job{dest: dest, bin: bin, files: files}
		if l, ok := layers[t.Service+"/"+t.Platform]; ok {
			j.layer = &l
		}
		jobs = append(jobs, j)
		out = append(out, dest)
	}
	// Compressing is the slow part: one bundle per core at a time.
	var eg errgroup.Group
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		eg.Go(func() error {
			// The bundle's other files are small: hash them; the binary
			// is known by its file (see seen.go).
			h := sha256.New()
			fmt.Fprintf(h, "%d\n", mtime.Unix())
			for _, f := range j.files[1:] {
				fmt.Fprintf(h, "%s %o %d\n", f.Name, f.Mode, len(f.Data))
				h.Write(f.Data)
			}
			binKey := fileKey(j.bin)
			if j.layer != nil {
				// Whether the layer can end the bundle follows from the
				// layer, the binary and the time: all in the key.
				fmt.Fprintf(h, "layer %s\n", j.layer.Digest)
			}
			rest := hex.EncodeToString(h.Sum(nil))
			if seen.done(fileKey(j.dest), binKey, rest) {
				return nil
			}
			layer, record := j.layer, true
			if layer != nil {
				ok, err := layerFits(*layer, j.files[0], j.bin, mtime)
				if !ok {
					// Compressed here instead; an unreadable layer is tried
					// again next time, not remembered as unfit.
					layer, record = nil, err == nil
				}
			}
			files := append([]export.File(nil), j.files...)
			if layer != nil {
				files[0].Layer = layer
			} else {
				bin, err := os.ReadFile(j.bin)
				if err != nil {
					return err
				}
				files[0].Data = bin
			}
			if _, err := export.WriteBundle(j.dest, files, mtime); err != nil {
				return err
			}
			if record {
				seen.record(fileKey(j.dest), binKey, rest)
			}
			return nil
		})
	}
	return out, eg.Wait()
}

func installScript(t plan.Target, unit, env, envPath string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#!/bin/sh\n# Installs %s (%s) as a systemd service. Run as root from the unpacked bundle.\nset -eu\ncd \"$(dirname \"$0\")\"\n", t.Service, t.Platform)
	fmt.Fprintf(&b, "install -D -m 0755 %s %s/%s\n", t.BinaryName, "/usr/local/bin", t.BinaryName)
	if env != "" {
		fmt.Fprintf(&b, "install -D -m 0600 %s %s\n", env, envPath)
	}
	fmt.Fprintf(&b, "install -D -m 0644 %s /etc/systemd/system/%s\n", unit, unit)
	fmt.Fprintf(&b, "systemctl daemon-reload\nsystemctl enable --now %s\n", unit)
	return b.Bytes()
}

// layerFits reports whether layer holds only the binary at bin, as the
// bundle's file f (export.LayerFits). Errors are those of reading.
func layerFits(layer export.Layer, f export.File, bin string, mtime time.Time) (bool, error) {
	st, err := os.Stat(bin)
	if err != nil {
		return false, err
	}
	return export.LayerFits(layer.Path, f.Name, f.Mode, st.Size(), mtime)
}
