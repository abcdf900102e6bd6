package berth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

// Images. Each builder builds the image targets of each platform in one
// solve and exports them, as one OCI index, into a store on this machine
// that outlives the build: a blob the store has already is not sent
// again, so a warm build exports almost nothing. Not a solve per service:
// the solves run at once and share their common steps, so the module and
// the toolchain are walked and sent once. A solve per platform because a
// solve exports only when all of it is built: the engine compresses a
// platform's layers, and berth extracts their binaries, as soon as that
// platform is built, while another still compiles (the platforms build
// at their own pace, see llbgen's stdBuild), instead of all of it after
// the last compile. berth then writes each service's multi-platform
// index from the manifests, encoded as BuildKit encodes the index of a
// multi-platform export, so the digest is the one BuildKit gives the
// service exported alone, whatever the number of services and builders.

// imageStore is the OCI store that holds the project's images (of the
// output directory) after a build.
func (b *builder) imageStore() string {
	return filepath.Join(b.cacheDir, "oci", hashKey(b.outDir), "images")
}

// targetID keys a target in a solve's result.
func targetID(t llbgen.Target) string {
	return t.Plan.Service + "/" + t.Plan.Platform
}

// imageUnit is one solve: images of one builder and platform, exported
// together.
type imageUnit struct {
	n     *node
	imgs  []llbgen.Target
	defs  []*pb.Definition
	store string
}

// unitBytes bounds the definitions of one solve: BuildKit's gateway sends
// every result reference back with its definition, in one message of at
// most 16 MiB.
const unitBytes = 6 << 20

// imageUnits splits each builder's images into a solve per platform, and
// those into solves whose definitions fit in a message. Each solve
// exports into a store of its own, kept between builds, from which the
// project's store is assembled (hard links).
func (b *builder) imageUnits(ctx context.Context) ([]*imageUnit, error) {
	var units []*imageUnit
	perPlatform := map[string]int{} // units so far
	for _, n := range b.nodes {
		var imgs []llbgen.Target
		for _, t := range n.graph.Targets {
			if t.Image != nil {
				imgs = append(imgs, t)
			}
		}
		if len(imgs) == 0 {
			continue
		}
		defs, err := b.imageDefs(ctx, imgs)
		if err != nil {
			return nil, err
		}
		// The unit of each platform that still takes definitions, and
		// their size.
		cur, size := map[string]*imageUnit{}, map[string]int{}
		for i, d := range defs {
			pf, s := imgs[i].Plan.Platform, proto.Size(d)
			u := cur[pf]
			if u == nil || size[pf]+s > unitBytes {
				// Named by what it holds, not by its place among this
				// build's units: a build of fewer platforms
				// (--platform) does not move the others' blobs.
				u = &imageUnit{n: n, store: fmt.Sprintf("%s-%s-%d", b.imageStore(), strings.ReplaceAll(pf, "/", "-"), perPlatform[pf])}
				units = append(units, u)
				perPlatform[pf]++
				cur[pf], size[pf] = u, 0
			}
			u.imgs = append(u.imgs, imgs[i])
			u.defs = append(u.defs, d)
			size[pf] += s
		}
	}
	return units, nil
}

func unitStores(us []*imageUnit) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.store)
	}
	return out
}

// imageDefs marshals the images of targets, one definition each.
func (b *builder) imageDefs(ctx context.Context, imgs []llbgen.Target) ([]*pb.Definition, error) {
	states := make([]llb.State, len(imgs))
	for i, t := range imgs {
		states[i] = t.Image.State
	}
	return llbgen.Definitions(ctx, states, b.marshalOpts()...)
}

// buildImages builds and exports the images of one unit, and records
// each target's manifest.
func (b *builder) buildImages(ctx context.Context, u *imageUnit, ch chan *client.SolveStatus) error {
	n, imgs, store := u.n, u.imgs, u.store
	exports := []client.ExportEntry{{
		Type: client.ExporterOCI,
		Attrs: map[string]string{
			"name": b.proj.Plan.Project, "tar": "false", "oci-mediatypes": "true",
			"source-date-epoch": strconv.FormatInt(b.proj.Plan.SourceDateEpoch, 10),
		},
		OutputDir: store,
	}}
	resp, err := n.eng.Client.Build(ctx, b.solveOpt(n, exports), "berth", func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		return b.imageResult(ctx, c, n, imgs, u.defs)
	}, ch)
	if err != nil {
		return err
	}
	top, err := decodeDescriptor(resp.ExporterResponse[exptypes.ExporterImageDescriptorKey])
	if err != nil {
		return err
	}
	var idx ocispecs.Index
	if err := readBlob(store, top, &idx); err != nil {
		return err
	}
	// The exporter lists the manifests in the order of the result's
	// platforms: the order of imgs.
	if len(idx.Manifests) != len(imgs) {
		return fmt.Errorf("the export holds %d images, not %d", len(idx.Manifests), len(imgs))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, t := range imgs {
		m := idx.Manifests[i]
		if m.Platform == nil || m.Platform.OS != t.Image.Platform.OS || m.Platform.Architecture != t.Image.Platform.Architecture || m.Platform.Variant != t.Image.Platform.Variant {
			return fmt.Errorf("%s: the export's image %d is not for %s", t.Plan.Service, i, t.Plan.Platform)
		}
		b.manifests[targetID(t)] = export.Manifest{Store: store, Desc: m}
	}
	return nil
}

// assembleImages writes every service's index into the project's store.
func (b *builder) assembleImages() error {
	store := b.imageStore()
	for _, si := range b.results {
		var ms []export.Manifest
		for _, t := range b.images(si.service) {
			m, ok := b.manifests[targetID(t)]
			if !ok {
				return fmt.Errorf("%s (%s): no image was exported", t.Plan.Service, t.Plan.Platform)
			}
			ms = append(ms, m)
		}
		desc, err := export.AssembleIndex(store, ms)
		if err != nil {
			return fmt.Errorf("%s: %w", si.service, err)
		}
		si.store, si.index = store, desc
	}
	// The store is a layout naming each service's index.
	l := &export.Layout{Dir: store}
	for _, si := range b.results {
		l.AddIndex(si.index, si.ref)
	}
	return l.Finish()
}

// ociArchives writes every service's OCI archive into dir, to be
// published with the rest.
func (b *builder) ociArchives(dir string) error {
	epoch := time.Unix(b.proj.Plan.SourceDateEpoch, 0).UTC()
	for _, si := range b.results {
		name := fmt.Sprintf("%s_%s.oci.tar", si.service, plan.ImageTag(b.proj.Plan.Version))
		if err := export.WriteOCIArchive(filepath.Join(dir, name), si.store, si.index, si.ref, epoch); err != nil {
			return err
		}
		b.archives = append(b.archives, name)
	}
	return nil
}

// pushImages pushes every service's index, once the build is published,
// and returns the references pushed.
func (b *builder) pushImages(ctx context.Context) ([]string, error) {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(4)
	refs := make([]string, len(b.results))
	for i, si := range b.results {
		eg.Go(func() error {
			refs[i] = b.pushName(si)
			return pushIndex(ectx, si.store, si.index, refs[i])
		})
	}
	return refs, eg.Wait()
}

// gcStores drops from the image stores every blob this build's images do
// not reach: the stores hold the last build, not every binary ever built.
// A build of some services or platforms trims only the project's store:
// the units' stores keep the others' blobs for the next whole build.
func (b *builder) gcStores() error {
	roots := map[string][]ocispecs.Descriptor{}
	proj := b.imageStore()
	for _, si := range b.results {
		roots[proj] = append(roots[proj], si.index)
	}
	if b.proj != b.full {
		return export.GC(proj, roots[proj])
	}
	for _, m := range b.manifests {
		if m.Store != proj {
			roots[m.Store] = append(roots[m.Store], m.Desc)
		}
	}
	for store, r := range roots {
		if err := export.GC(store, r); err != nil {
			return err
		}
	}
	// Stores of this output that this build did not use: units of an
	// earlier build split otherwise, older layouts of the cache.
	dir := filepath.Dir(proj)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if _, used := roots[filepath.Join(dir, name)]; used || strings.HasSuffix(name, ".lock") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// decodeDescriptor reads the descriptor an image exporter returns.
func decodeDescriptor(s string) (ocispecs.Descriptor, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 {
		return ocispecs.Descriptor{}, errors.New("the exporter gave no image descriptor")
	}
	return export.ReadDescriptor(raw)
}
