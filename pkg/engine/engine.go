package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"

	// Connection helpers register their URL schemes.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	_ "github.com/moby/buildkit/client/connhelper/ssh"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Kind says which engine berth talks to.
type Kind string

const (
	Embedded Kind = "embedded"
	Remote   Kind = "remote"
	Docker   Kind = "docker"
)

// Options select and configure the engine.
type Options struct {
	// Builder is "" (BUILDKIT_HOST, else the embedded engine), "docker",
	// or a BuildKit address.
	Builder string
	// TLS for tcp:// addresses.
	TLSCACert, TLSCert, TLSKey, TLSServerName string
	// StateDir holds the embedded engine; default $XDG_STATE_HOME/berth.
	StateDir string
	// Buildkitd is the daemon binary; default: $BERTH_BUILDKITD, then
	// buildkitd next to the berth executable, then PATH.
	Buildkitd string
	// Config is an optional buildkitd.toml for the embedded engine.
	Config string
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
}

func (o Options) getenv(k string) string {
	if o.Getenv != nil {
		return o.Getenv(k)
	}
	return os.Getenv(k)
}

// Engine is a connected BuildKit.
type Engine struct {
	Client *client.Client
	Kind   Kind
	// Addr names the engine for messages.
	Addr string
	// Platform is the worker's own platform: compile steps run on it.
	Platform ocispecs.Platform
	// RuncLog is the embedded engine's runc log: where the real cause of
	// a step that fails with a bare exit code is, in rootless mode.
	RuncLog string
	// Exporters lacking on this engine (the Docker engine's BuildKit has
	// no oci or docker exporter).
	NoOCIExporter bool
	// Cores are the engine machine's CPU cores when berth knows them
	// (its embedded engine runs on this machine; see HostCores), else 0.
	Cores int
}

// HostCores are the cores berth and its embedded engine may use on this
// machine: GOMAXPROCS, as the go command's -p counts them. Its default
// is the CPUs the process may run on, capped by its cgroup's CPU limit
// (a CI container of 4 CPUs on a 64-core host counts 4, not 64, and
// does not start 64 compiles on 4 CPUs' time); a GOMAXPROCS in berth's
// environment sets it, as it does go build's.
func HostCores() int { return runtime.GOMAXPROCS(0) }

// Close closes the connection; an embedded daemon keeps running.
func (e *Engine) Close() error { return e.Client.Close() }

// Connect picks the engine from o and connects to it.
func Connect(ctx context.Context, o Options) (*Engine, error) {
	addr := o.Builder
	if addr == "" {
		addr = o.getenv("BUILDKIT_HOST")
	}
	switch {
	case addr == "":
		return connectEmbedded(ctx, o)
	case addr == "docker":
		return connectDocker(ctx, o)
	}
	var opts []client.ClientOpt
	if o.TLSCACert != "" || o.TLSServerName != "" {
		opts = append(opts, client.WithServerConfig(o.TLSServerName, o.TLSCACert))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, client.WithCredentials(o.TLSCert, o.TLSKey))
	}
	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to BuildKit at %s: %w", addr, err)
	}
	e := &Engine{Client: c, Kind: Remote, Addr: addr}
	if err := e.probe(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return e, nil
}

// probe asks the engine for its workers, to fail early and learn the
// builder platform.
func (e *Engine) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ws, err := e.Client.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("BuildKit at %s does not answer: %w", e.Addr, err)
	}
	if len(ws) == 0 || len(ws[0].Platforms) == 0 {
		return fmt.Errorf("BuildKit at %s has no worker", e.Addr)
	}
	p := platforms.Normalize(ws[0].Platforms[0])
	// Variants such as amd64/v3 do not change which toolchain runs.
	if p.Architecture == "amd64" {
		p.Variant = ""
	}
	e.Platform = p
	return nil
}

// StateDir returns the directory berth keeps its engine in.
func StateDir(o Options) (string, error) {
	if o.StateDir != "" {
		return o.StateDir, nil
	}
	if d := o.getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "berth"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set XDG_STATE_HOME or HOME: %w", err)
	}
	return filepath.Join(home, ".local", "state", "berth"), nil
}
