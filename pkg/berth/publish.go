package berth

import (
	"context"
	"encoding/json"
	"fmt"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/plan"
	"github.com/berthbuild/berth/pkg/verify"
)

// Publishing: verified binaries, the OCI layout, archives, side outputs.

// verifyBinaries checks every exported binary before anything is
// published, pushed or loaded.
func (b *builder) verifyBinaries(binTmp string) error {
	if binTmp == "" {
		return nil
	}
	verified := b.memo("verified")
	for _, t := range b.graph.Targets {
		if !t.Plan.Outputs.Binary {
			continue
		}
		p := filepath.Join(binTmp, t.Plan.Service, strings.ReplaceAll(t.Plan.Platform, "/", "_"), t.Plan.BinaryName)
		w := want(t.Plan)
		key, wk := fileKey(p), fmt.Sprintf("%+v", w)
		if verified.done(key, wk) {
			continue // this very file passed these checks before
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return b.targetFailed(t.Plan, fmt.Errorf("%s (%s): binary missing from the export: %w", t.Plan.Service, t.Plan.Platform, err))
		}
		if err := verify.Binary(data, w); err != nil {
			return b.targetFailed(t.Plan, fmt.Errorf("%s (%s): binary check failed: %w", t.Plan.Service, t.Plan.Platform, err))
		}
		verified.record(key, wk)
	}
	return nil
}

// publish moves every verified result into place: the OCI layout, the
// binaries, the side outputs, the bundles and the archives staged in
// archTmp.
func (b *builder) publish(ctx context.Context, binTmp, archTmp string) (*BuildResult, error) {
	res := &BuildResult{OutDir: b.outDir}
	if len(b.results) > 0 && !b.eng.NoOCIExporter {
		dest := filepath.Join(b.outDir, "oci")
		if err := b.publishLayout(dest, res); err != nil {
			return nil, err
		}
		if err := b.gcStores(); err != nil {
			return nil, err
		}
		tracerFrom(ctx).mark("publish layout")
		res.Layout = dest
	}
	if binTmp != "" {
		if err := b.publishBinaries(binTmp); err != nil {
			return nil, err
		}
		for _, t := range b.graph.Targets {
			if t.Plan.Outputs.Binary {
				res.Binaries = append(res.Binaries, filepath.Join(b.outDir, "bin", t.Plan.Service, strings.ReplaceAll(t.Plan.Platform, "/", "_"), t.Plan.BinaryName))
			}
		}
		sort.Strings(res.Binaries)
	}
	tracerFrom(ctx).mark("publish binaries")
	// The side outputs are the whole project's, whatever this build chose.
	b.wrote = true // from here on, any step may have written a file
	gen, err := writeSideOutputs(b.full, b.side, false)
	if err != nil {
		return nil, err
	}
	for _, f := range gen.Files {
		res.Generated = append(res.Generated, outPath(b.proj.Config.Dir, f))
	}
	if binTmp != "" {
		if res.Bundles, err = writeBundles(b.proj, b.outDir, b.side, b.memo("bundles"), b.layers); err != nil {
			return nil, err
		}
		tracerFrom(ctx).mark("bundles")
	}
	for _, a := range b.archives {
		dest := filepath.Join(b.outDir, "archives", a)
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(archTmp, a), dest); err != nil {
			return nil, err
		}
		res.Archives = append(res.Archives, dest)
	}
	if b.eng.NoOCIExporter {
		for _, si := range b.results {
			res.Loaded = append(res.Loaded, si.ref)
		}
	}
	return res, nil
}

// publishBinaries moves the binaries into OUT/bin: a service's directory
// as a whole when this build built all its platforms, else each built
// platform's, leaving the others as they are.
func (b *builder) publishBinaries(binTmp string) error {
	for _, s := range b.proj.Plan.Services {
		src := filepath.Join(binTmp, s)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		dest := filepath.Join(b.outDir, "bin", s)
		if countTargets(b.proj.Plan, s) == countTargets(b.full.Plan, s) {
			if err := export.ReplaceDir(src, dest); err != nil {
				return err
			}
			b.wrote = true
			continue
		}
		for _, t := range b.proj.Plan.Targets {
			if t.Service != s || !t.Outputs.Binary {
				continue
			}
			pf := strings.ReplaceAll(t.Platform, "/", "_")
			if err := export.ReplaceDir(filepath.Join(src, pf), filepath.Join(dest, pf)); err != nil {
				return err
			}
			b.wrote = true
		}
	}
	return nil
}

func countTargets(p *plan.Plan, service string) int {
	n := 0
	for _, t := range p.Targets {
		if t.Service == service {
			n++
		}
	}
	return n
}

// publishLayout merges the services' stores into one OCI layout, keeping
// the indexes of services this build did not touch, and swaps it in.
func (b *builder) publishLayout(dest string, res *BuildResult) error {
	if b.layoutUpToDate(dest) {
		for _, si := range b.results {
			res.Images = append(res.Images, ImageResult{Service: si.service, Ref: si.ref, Digest: si.index.Digest.String()})
		}
		return nil
	}
	tmp, err := export.TempDir(dest)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lay, err := export.NewLayout(tmp)
	if err != nil {
		return err
	}
	built := map[string]bool{}
	for _, si := range b.results {
		desc := si.index
		if err := lay.AddImage(si.store, desc); err != nil {
			return err
		}
		lay.AddIndex(desc, si.ref)
		built[si.service] = true
		res.Images = append(res.Images, ImageResult{Service: si.service, Ref: si.ref, Digest: desc.Digest.String()})
	}
	if err := keepOthers(dest, lay, built, b.full.Plan); err != nil {
		return err
	}
	if err := lay.Finish(); err != nil {
		return err
	}
	if err := export.ReplaceDir(tmp, dest); err != nil {
		return err
	}
	b.wrote = true
	return nil
}

// keepOthers carries over, from an existing layout, the indexes of the
// project's services not rebuilt now; a service gone from the project
// goes from the layout.
func keepOthers(dest string, lay *export.Layout, built map[string]bool, full *plan.Plan) error {
	images := map[string]bool{}
	for _, t := range full.Targets {
		if t.Outputs.Image {
			images[t.Service] = true
		}
	}
	b, err := os.ReadFile(filepath.Join(dest, "index.json"))
	if err != nil {
		return nil
	}
	var idx struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil
	}
	for _, m := range idx.Manifests {
		d, err := export.ReadDescriptor(m)
		if err != nil {
			continue
		}
		name := d.Annotations[export.RefName]
		svc, _, _ := strings.Cut(name, ":")
		if built[svc] || !images[svc] {
			continue
		}
		// Only the blobs of the images kept: the layout holds what its
		// index names, nothing older.
		if err := lay.AddImage(dest, d); err != nil {
			return err
		}
		lay.AddIndex(d, name)
	}
	return nil
}

// layoutUpToDate reports whether the layout at dest names exactly this
// build's images, with every blob in place: a warm build leaves it alone.
func (b *builder) layoutUpToDate(dest string) bool {
	raw, err := os.ReadFile(filepath.Join(dest, "index.json"))
	if err != nil {
		return false
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(raw, &idx); err != nil || len(idx.Manifests) != len(b.results) {
		return false
	}
	have := map[string]ocispecs.Descriptor{}
	for _, m := range idx.Manifests {
		have[m.Annotations[export.RefName]] = m
	}
	for _, si := range b.results {
		m, ok := have[si.ref]
		if !ok || m.Digest != si.index.Digest || m.Size != si.index.Size || m.MediaType != si.index.MediaType {
			return false
		}
		if !export.Holds(dest, m) {
			return false
		}
	}
	return true
}
