package berth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	dockerclient "github.com/docker/docker/client"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"

	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

// dockerEngine connects to the Docker engine for --load, negotiating the
// API version, and returns its platform.
func dockerEngine(ctx context.Context) (*dockerclient.Client, string, error) {
	api, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		return nil, "", err
	}
	info, err := api.Info(ctx)
	if err != nil {
		api.Close()
		return nil, "", fmt.Errorf("--load: no Docker engine answers at %s (set DOCKER_HOST, or leave out --load): %w", api.DaemonHost(), err)
	}
	// Docker reports uname's machine; the plan names platforms as OCI does.
	arch := info.Architecture
	switch arch {
	case "x86_64":
		arch = "amd64"
	case "aarch64":
		arch = "arm64"
	case "armv7l":
		arch = "arm/v7"
	case "armv6l":
		arch = "arm/v6"
	case "i386", "i686":
		arch = "386"
	}
	return api, info.OSType + "/" + arch, nil
}

// dockerArchives writes into dir a docker-archive tarball per service
// and platform, to be published with the rest. Docker 20.10 loads only
// docker-archive tarballs of one platform.
func (b *builder) dockerArchives(ctx context.Context, dir string, newStatus func(*node) chan *client.SolveStatus) error {
	for _, si := range b.results {
		for _, t := range b.images(si.service) {
			name := fmt.Sprintf("%s_%s_%s.docker.tar", si.service, plan.ImageTag(b.proj.Plan.Version), strings.ReplaceAll(t.Plan.Platform, "/", "_"))
			if err := b.dockerArchive(ctx, si, t, atomicOutput(filepath.Join(dir, name)), newStatus(b.nodeOf(t.Plan))); err != nil {
				return err
			}
			b.archives = append(b.archives, name)
		}
	}
	return nil
}

// loadImages loads, once the build is published, each service's image
// for the Docker engine's platform into Docker, and returns their names.
func (b *builder) loadImages(ctx context.Context, newStatus func(*node) chan *client.SolveStatus) ([]string, error) {
	api, enginePlatform, err := dockerEngine(ctx)
	if err != nil {
		return nil, err
	}
	defer api.Close()
	var loaded []string
	for _, si := range b.results {
		for _, t := range b.images(si.service) {
			if t.Plan.Platform != enginePlatform {
				continue
			}
			pr, pw := io.Pipe()
			loadErr := make(chan error, 1)
			go func() {
				resp, err := api.ImageLoad(ctx, pr, dockerclient.ImageLoadWithQuiet(true))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				pr.CloseWithError(err)
				loadErr <- err
			}()
			out := func(map[string]string) (io.WriteCloser, error) { return pw, nil }
			err := b.dockerArchive(ctx, si, t, out, newStatus(b.nodeOf(t.Plan)))
			pw.CloseWithError(err)
			if lerr := <-loadErr; lerr != nil {
				// Docker's own error: the export then only broke its pipe.
				err = fmt.Errorf("--load %s: %w", si.ref, lerr)
			}
			if err != nil {
				return loaded, err
			}
			loaded = append(loaded, si.ref)
		}
	}
	return loaded, nil
}

// checkLoad fails before the build when --load cannot load every image:
// no Docker engine answers, or a service has no image for its platform.
func checkLoad(ctx context.Context, p *plan.Plan) error {
	api, enginePlatform, err := dockerEngine(ctx)
	if err != nil {
		return err
	}
	api.Close()
	for _, s := range p.Services {
		var images, match bool
		for _, t := range p.Targets {
			if t.Service == s && t.Outputs.Image {
				images = true
				match = match || t.Platform == enginePlatform
			}
		}
		if images && !match {
			return fmt.Errorf("--load: %s has no %s image, the Docker engine's platform (build it for %s, or leave out --load)", s, enginePlatform, enginePlatform)
		}
	}
	return nil
}

// dockerArchive exports one platform's image as a docker-archive.
func (b *builder) dockerArchive(ctx context.Context, si *serviceImage, t llbgen.Target, out func(map[string]string) (io.WriteCloser, error), ch chan *client.SolveStatus) error {
	exp := client.ExportEntry{
		Type:   client.ExporterDocker,
		Attrs:  map[string]string{"name": si.ref, "source-date-epoch": fmt.Sprint(b.proj.Plan.SourceDateEpoch)},
		Output: out,
	}
	n := b.nodeOf(t.Plan)
	_, err := n.eng.Client.Build(ctx, b.solveOpt(n, []client.ExportEntry{exp}), "berth", func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		def, err := b.marshal(ctx, t.Image.State)
		if err != nil {
			return nil, err
		}
		r, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		ref, err := r.SingleRef()
		if err != nil {
			return nil, err
		}
		cfg, err := json.Marshal(t.Image.Config)
		if err != nil {
			return nil, err
		}
		res := gateway.NewResult()
		res.SetRef(ref)
		res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
		return res, nil
	}, ch)
	return onNode(n, err)
}
