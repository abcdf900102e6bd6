package engine

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	dockerclient "github.com/docker/docker/client"
	"github.com/moby/buildkit/client"
)

// minDockerAPI is the first Docker API with BuildKit's /grpc endpoint.
const minDockerAPI = "1.39"

// connectDocker reaches the Docker engine's own BuildKit through the
// engine API, by hijacking /grpc and /session as buildx's docker driver
// does.
func connectDocker(ctx context.Context, o Options) (*Engine, error) {
	api, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ping, err := api.Ping(ctx)
	if err != nil {
		return nil, fmt.Errorf("no Docker engine at %s (--builder docker): %w", api.DaemonHost(), err)
	}
	if versionLess(ping.APIVersion, minDockerAPI) {
		return nil, fmt.Errorf("the Docker engine at %s speaks API %s, which has no BuildKit endpoint (/grpc, API %s or newer, Docker 18.09+): upgrade the engine or use --builder ADDR", api.DaemonHost(), ping.APIVersion, minDockerAPI)
	}
	if ping.BuilderVersion != "" && ping.BuilderVersion != "2" {
		return nil, fmt.Errorf("the Docker engine at %s has BuildKit off (builder version %s): set \"features\": {\"buildkit\": true} in daemon.json", api.DaemonHost(), ping.BuilderVersion)
	}
	c, err := client.New(ctx, "",
		client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return api.DialHijack(ctx, "/grpc", "h2c", nil)
		}),
		client.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return api.DialHijack(ctx, "/session", proto, meta)
		}),
	)
	if err != nil {
		return nil, err
	}
	e := &Engine{Client: c, Kind: Docker, Addr: "Docker engine at " + api.DaemonHost(), NoOCIExporter: true}
	if err := e.probe(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return e, nil
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
