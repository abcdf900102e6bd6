package berth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

// Builders per platform. Every target is built by exactly one BuildKit:
// the builder named for its platform, else the default one. berth splits
// the graph by builder, runs the parts in parallel, and assembles each
// service's multi-platform index from the parts, as buildx does with the
// nodes of a builder.

// node is one BuildKit and the part of the graph it builds.
type node struct {
	opts   engine.Options
	eng    *engine.Engine
	pfs    []string // the platforms it builds, sorted
	mounts map[string]fsutil.FS
	stores map[string]content.Store // OCI stores of the session
	graph  *llbgen.Graph
}

// name says which builder a node is, for messages and cache names.
func (n *node) name() string {
	if n.eng != nil {
		return n.eng.Addr
	}
	if n.opts.Builder != "" {
		return n.opts.Builder
	}
	return "the embedded engine"
}

// nodeError is an error of one builder's solve.
type nodeError struct {
	addr string
	err  error
}

func (e *nodeError) Error() string { return e.err.Error() }
func (e *nodeError) Unwrap() error { return e.err }

// onNode marks err as coming from n.
func onNode(n *node, err error) error {
	if err == nil {
		return nil
	}
	var ne *nodeError
	if errors.As(err, &ne) {
		return err
	}
	return &nodeError{addr: n.name(), err: err}
}

// IsPlatformBuilder reports whether a --builder value is PLATFORM=ADDRESS,
// and splits it.
func IsPlatformBuilder(v string) (platform, addr string, ok bool) {
	pf, a, ok := strings.Cut(v, "=")
	if !ok || strings.Contains(pf, "://") || !strings.Contains(pf, "/") || a == "" {
		return "", "", false
	}
	return pf, a, true
}

// planNodes decides which builder builds each platform of the plan:
// --builder PLATFORM=ADDR, then the config's builders[PLATFORM], then the
// default builder: --builder ADDR, $BUILDKIT_HOST, builders.default, the
// embedded engine. Platforms with the same builder share a node. proj is
// the whole project, targets what this build builds.
func planNodes(o BuildOptions, proj *Project, targets []plan.Target) ([]*node, error) {
	getenv := o.Engine.Getenv
	if getenv == nil {
		getenv = o.Env.get
	}
	cfg := proj.Config.Builders
	fromConfig := func(key string) engine.Options {
		b := cfg[key]
		e := o.Engine
		e.Builder = b.Address
		e.TLSCACert = configFile(proj, b.CACert)
		e.TLSCert = configFile(proj, b.Cert)
		e.TLSKey = configFile(proj, b.Key)
		e.TLSServerName = b.ServerName
		return e
	}
	def := o.Engine
	if def.Builder == "" && getenv("BUILDKIT_HOST") == "" {
		if _, ok := cfg["default"]; ok {
			def = fromConfig("default")
		}
	}
	for pf := range o.Builders {
		if !knownPlatform(proj.Plan, pf) {
			return nil, fmt.Errorf("--builder %s=…: the plan has no %s target", pf, pf)
		}
	}
	var nodes []*node
	byKey := map[string]*node{}
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t.Platform] {
			continue
		}
		seen[t.Platform] = true
		opts := def
		if a, ok := o.Builders[t.Platform]; ok {
			opts = o.Engine
			opts.Builder = a
		} else if _, ok := cfg[t.Platform]; ok {
			opts = fromConfig(t.Platform)
		}
		key := strings.Join([]string{opts.Builder, opts.TLSCACert, opts.TLSCert, opts.TLSKey, opts.TLSServerName}, "\x00")
		n := byKey[key]
		if n == nil {
			n = &node{opts: opts}
			byKey[key] = n
			nodes = append(nodes, n)
		}
		n.pfs = append(n.pfs, t.Platform)
	}
	if len(nodes) == 0 {
		nodes = []*node{{opts: def}}
	}
	for _, n := range nodes {
		sort.Strings(n.pfs)
		if n.opts.Builder != "docker" && (n.opts.Builder != "" || getenv("BUILDKIT_HOST") != "docker") {
			continue
		}
		if len(nodes) > 1 {
			return nil, errors.New("the Docker engine's BuildKit keeps images inside Docker: it cannot be one of several builders")
		}
		// It exports images into Docker only, by name.
		for _, f := range []struct {
			on   bool
			flag string
		}{{o.Push != "", "--push"}, {o.OCIArchive, "--oci-archive"}, {o.DockerArchive, "--docker-archive"}} {
			if f.on {
				return nil, fmt.Errorf("%s: the Docker engine's BuildKit (--builder docker) stores images only inside Docker; build on the embedded engine or a BuildKit address, or push or save from Docker", f.flag)
			}
		}
	}
	return nodes, nil
}

func knownPlatform(p *plan.Plan, pf string) bool {
	for _, t := range p.Targets {
		if t.Platform == pf {
			return true
		}
	}
	return false
}

// configFile resolves a file named in the config against its directory.
func configFile(proj *Project, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(proj.Config.Dir, p)
}

// subPlan is p with only the targets built on the platforms pfs.
func subPlan(p *plan.Plan, pfs []string) *plan.Plan {
	q := *p
	q.Targets = nil
	for _, t := range p.Targets {
		for _, pf := range pfs {
			if t.Platform == pf {
				q.Targets = append(q.Targets, t)
			}
		}
	}
	return &q
}

// connectNodes connects to every node's BuildKit.
func connectNodes(ctx context.Context, nodes []*node) error {
	for _, n := range nodes {
		eng, err := engine.Connect(ctx, n.opts)
		if err != nil {
			if len(nodes) > 1 {
				return fmt.Errorf("builder for %s: %w", strings.Join(n.pfs, ", "), err)
			}
			return err
		}
		n.eng = eng
	}
	return nil
}

// nodeOf returns the node that builds a target.
func (b *builder) nodeOf(t *plan.Target) *node {
	for _, n := range b.nodes {
		for _, pf := range n.pfs {
			if pf == t.Platform {
				return n
			}
		}
	}
	return b.nodes[0]
}

// suffix names a node's platforms in file names and cache tags:
// linux-arm64, or linux-amd64_linux-arm-v7.
func (n *node) suffix() string {
	parts := make([]string, len(n.pfs))
	for i, pf := range n.pfs {
		parts[i] = strings.ReplaceAll(pf, "/", "-")
	}
	return strings.Join(parts, "_")
}

// cacheExports are the cache exports of node n's solve. With one builder
// they are the build's; with several, each builder's cache goes to a
// place of its own beside the one given, so that they do not overwrite
// each other: a registry ref gets the node's platforms in its tag
// (REPO:linux-arm64, REPO:TAG-linux-arm64), a local directory a
// subdirectory of that name. The imports of the same node read from the
// same place.
func (b *builder) cacheExports(n *node) ([]client.CacheOptionsEntry, error) {
	return b.nodeCache(n, b.cacheTo, "dest")
}

// checkCaches fails when a cache entry cannot be split among the
// builders, before anything is solved: an import that cannot be is not
// silently left out.
func (b *builder) checkCaches() error {
	for _, n := range b.nodes {
		if _, err := b.cacheExports(n); err != nil {
			return fmt.Errorf("--cache-to: %w", err)
		}
		if _, err := b.cacheImports(n); err != nil {
			return fmt.Errorf("--cache-from: %w", err)
		}
	}
	return nil
}

// cacheImports are the cache imports of node n's solves.
func (b *builder) cacheImports(n *node) ([]client.CacheOptionsEntry, error) {
	return b.nodeCache(n, b.cacheFrom, "src")
}

func (b *builder) nodeCache(n *node, in []client.CacheOptionsEntry, dirKey string) ([]client.CacheOptionsEntry, error) {
	if len(b.nodes) <= 1 || len(in) == 0 {
		return in, nil
	}
	out := make([]client.CacheOptionsEntry, len(in))
	for i, e := range in {
		attrs := maps.Clone(e.Attrs)
		switch e.Type {
		case "registry":
			ref := attrs["ref"]
			if strings.Contains(ref, "@") {
				return nil, fmt.Errorf("cache ref %s: with several builders, a cache is a tag per builder, not a digest", ref)
			}
			slash := strings.LastIndex(ref, "/")
			if colon := strings.LastIndex(ref, ":"); colon > slash {
				attrs["ref"] = ref + "-" + n.suffix()
			} else {
				attrs["ref"] = ref + ":" + n.suffix()
			}
		case "local":
			if attrs[dirKey] == "" {
				return nil, fmt.Errorf("cache type=local needs %s=DIR", dirKey)
			}
			attrs[dirKey] = filepath.Join(attrs[dirKey], n.suffix())
		default:
			return nil, fmt.Errorf("cache type=%s: with several builders, berth shares registry and local caches only", e.Type)
		}
		out[i] = client.CacheOptionsEntry{Type: e.Type, Attrs: attrs}
	}
	return out, nil
}

// assembleBinaries moves the binaries several builders exported, each
// into a directory of its own, into one.
func (b *builder) assembleBinaries(binTmp string) error {
	if binTmp == "" {
		return nil
	}
	for i := range b.nodes {
		nd := filepath.Join(binTmp, fmt.Sprintf(".node-%d", i))
		svcs, err := os.ReadDir(nd)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		for _, s := range svcs {
			pfs, err := os.ReadDir(filepath.Join(nd, s.Name()))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(binTmp, s.Name()), 0o755); err != nil {
				return err
			}
			for _, pf := range pfs {
				if err := os.Rename(filepath.Join(nd, s.Name(), pf.Name()), filepath.Join(binTmp, s.Name(), pf.Name())); err != nil {
					return err
				}
			}
		}
		if err := os.RemoveAll(nd); err != nil {
			return err
		}
	}
	return nil
}

// pushIndex pushes a service's index from the store, with every blob it
// needs; blobs the registry has already are not sent again.
func pushIndex(ctx context.Context, store string, desc ocispecs.Descriptor, ref string) error {
	var nopts []name.Option
	if insecureRegistry(ref) {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return fmt.Errorf("--push %s: %w", ref, err)
	}
	root, err := layout.Path(store).ImageIndex()
	if err != nil {
		return err
	}
	h, err := v1.NewHash(desc.Digest.String())
	if err != nil {
		return err
	}
	idx, err := root.ImageIndex(h)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
