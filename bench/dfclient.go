package main

// The Dockerfile path: one solve per service with BuildKit's dockerfile
// frontend, all at once, as `docker buildx bake` runs a group, each
// exporting a multi-platform OCI tarball. The client runs in a process of
// its own (this program, re-executed with the dfbuild subcommand) so its
// RSS is measured like berth's.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/moby/buildkit/client"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/berthbuild/berth/pkg/engine"
)

// dfArgs is what the parent passes to the dfbuild subprocess.
type dfArgs struct {
	StateDir, Buildkitd string // the embedded engine berth uses
	Context             string // module root
	Dockerfiles         string // <dir>/<service>/Dockerfile
	Services            []string
	Platforms           []string
	Out                 string // <service>.oci.tar files
	Repro               bool   // SOURCE_DATE_EPOCH=0 and rewrite-timestamp=true
}

// dfReport is what the subprocess prints.
type dfReport struct {
	Rebuilt []string // "<service>: <step name>" of go build steps that ran
	Top     []vertexTime
}

type dfRunner struct {
	self string
	args dfArgs
}

func (r *dfRunner) daemon() daemonPID {
	p, err := engine.EnginePaths(engine.Options{StateDir: r.args.StateDir})
	if err != nil {
		return func() int { return 0 }
	}
	return pidFromFile(p.PID)
}

func (r *dfRunner) build(ctx context.Context) (sample, *dfReport, error) {
	a, err := json.Marshal(r.args)
	if err != nil {
		return sample{}, nil, err
	}
	if err := os.MkdirAll(r.args.Out, 0o755); err != nil {
		return sample{}, nil, err
	}
	cmd := exec.CommandContext(ctx, r.self, "dfbuild", string(a))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	s, err := runMeasured(cmd, r.daemon())
	if err != nil {
		return s, nil, fmt.Errorf("Dockerfile builds: %v\n%s", err, lastLines(stderr.String(), 60))
	}
	var rep dfReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return s, nil, fmt.Errorf("Dockerfile builds: bad report: %v\n%s", err, stdout.String())
	}
	s.Rebuilt = len(rep.Rebuilt)
	return s, &rep, nil
}

// dfBuildMain is the dfbuild subprocess.
func dfBuildMain(arg string) error {
	var a dfArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		return err
	}
	ctx := context.Background()
	// Connect starts the daemon when it is not running, as berth does.
	eng, err := engine.Connect(ctx, engine.Options{StateDir: a.StateDir, Buildkitd: a.Buildkitd})
	if err != nil {
		return err
	}
	defer eng.Close()
	ctxFS, err := fsutil.NewFS(a.Context)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	rep := dfReport{Rebuilt: []string{}}
	var all []*client.Vertex
	eg, ectx := errgroup.WithContext(ctx)
	for _, svc := range a.Services {
		eg.Go(func() error {
			vs, err := solveOne(ectx, eng.Client, a, svc, ctxFS)
			mu.Lock()
			defer mu.Unlock()
			for _, v := range ranVertices(vs) {
				all = append(all, v)
				if strings.Contains(v.Name, " go build ") {
					rep.Rebuilt = append(rep.Rebuilt, svc+": "+v.Name)
				}
			}
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	sort.Strings(rep.Rebuilt)
	rep.Top = topVertices(all, 6)
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func solveOne(ctx context.Context, c *client.Client, a dfArgs, svc string, ctxFS fsutil.FS) (map[string]*client.Vertex, error) {
	dfFS, err := fsutil.NewFS(filepath.Join(a.Dockerfiles, svc))
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{"filename": "Dockerfile", "platform": strings.Join(a.Platforms, ",")}
	exp := map[string]string{"name": svc + ":" + version}
	if a.Repro {
		attrs["build-arg:SOURCE_DATE_EPOCH"] = "0"
		exp["rewrite-timestamp"] = "true"
	}
	out := filepath.Join(a.Out, svc+".oci.tar")
	ch := make(chan *client.SolveStatus)
	vs := map[string]*client.Vertex{}
	logs := map[string]*bytes.Buffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range ch {
			mergeVertices(vs, s.Vertexes)
			for _, l := range s.Logs {
				k := l.Vertex.String()
				if logs[k] == nil {
					logs[k] = &bytes.Buffer{}
				}
				logs[k].Write(l.Data)
			}
		}
	}()
	_, err = c.Solve(ctx, nil, client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		SharedKey:     "bench-dockerfile:" + svc,
		Exports: []client.ExportEntry{{
			Type:  client.ExporterOCI,
			Attrs: exp,
			Output: func(map[string]string) (io.WriteCloser, error) {
				return os.Create(out)
			},
		}},
	}, ch)
	<-done
	if err != nil {
		var msg strings.Builder
		fmt.Fprintf(&msg, "%s: %v", svc, err)
		for k, v := range vs {
			if v.Error != "" {
				fmt.Fprintf(&msg, "\nstep %s failed: %s", v.Name, v.Error)
				if l := logs[k]; l != nil {
					fmt.Fprintf(&msg, "\n%s", lastLines(l.String(), 30))
				}
			}
		}
		return vs, fmt.Errorf("%s", msg.String())
	}
	return vs, nil
}
