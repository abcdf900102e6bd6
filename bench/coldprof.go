package main

// The CPU profile of one more cold berth build: where the engine's and
// the client's own CPU goes (the work the floor does not do), grouped by
// what the code is for. Outside the measured runs: profiling costs CPU.

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// cpuShare is the CPU of one kind of work in a profile.
type cpuShare struct {
	What    string
	Seconds float64
}

// coldProfile is the profile of one cold build, engine and client.
type coldProfile struct {
	Wall           float64 // the profiled build, s
	Engine, Client []cpuShare
	EngineTotal    float64 // core-s in the engine's profile
	ClientTotal    float64
}

// area classifies a sample by the frames of its stack, innermost first:
// the first rule any frame matches names it.
type area struct {
	what  string
	match []string // substrings of a function name
}

// engineAreas and clientAreas: the first area a sample's stack matches,
// in this order, names its work.
var engineAreas = []area{
	{"gzip of the images' layers (BuildKit's compress/gzip)", []string{"compress/flate.(*compressor)", "compress/flate.(*Writer)", "compress/gzip.(*Writer)", "compress/flate.(*huffmanBitWriter)"}},
	{"unpacking the toolchain image (containerd's diff apply)", []string{"core/diff/apply.", "klauspost/compress/zstd"}},
	{"hashing content (sha256)", []string{"crypto/internal/fips140/sha256", "crypto/sha256"}},
	{"metadata databases (bbolt)", []string{"go.etcd.io/bbolt"}},
	{"snapshots and file copies (overlay, fsutil, copy)", []string{"snapshots/overlay", "tonistiigi/fsutil", "continuity/fs", "moby/buildkit/snapshot", "util/overlay"}},
	{"sessions and gRPC (sources in, layers out)", []string{"google.golang.org/grpc", "golang.org/x/net/http2"}},
	{"running steps (runc, containers)", []string{"executor/runcexecutor", "executor/oci", "go-runc"}},
	{"solver", []string{"moby/buildkit/solver"}},
	{"Go runtime (GC, scheduler)", []string{"runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.schedule", "runtime.findRunnable", "runtime.bgsweep", "runtime.bgscavenge", "runtime.mallocgc"}},
}

var clientAreas = []area{
	{"gzip of the bare-metal bundles (klauspost/compress)", []string{"klauspost/compress/flate.(*compressor)", "klauspost/compress/flate.(*Writer)", "klauspost/compress/gzip.(*Writer)", "klauspost/compress/flate.(*fastEnc", "klauspost/compress/flate.(*huffmanBitWriter)"}},
	{"gunzip of the layers (binaries from the images)", []string{"klauspost/compress/flate.(*decompressor)", "klauspost/compress/gzip.(*Reader)"}},
	{"hashing (sha256: blobs, bundle inputs)", []string{"crypto/internal/fips140/sha256", "crypto/sha256"}},
	{"config: load, validate, plan (CUE)", []string{"cuelang.org/go", "berth/pkg/config.", "berth/pkg/plan."}},
	{"LLB generation and marshalling", []string{"moby/buildkit/client/llb", "berth/pkg/llbgen."}},
	{"go list of the services' packages", []string{"berth/pkg/berth.goList", "berth/pkg/berth.listPackages"}},
	{"sessions and gRPC (sources out, layers in)", []string{"google.golang.org/grpc", "golang.org/x/net/http2", "tonistiigi/fsutil", "containerd/v2/plugins/content/local"}},
	{"progress display", []string{"util/progress/progressui", "tonistiigi/vt100"}},
	{"Go runtime (GC, scheduler)", []string{"runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.schedule", "runtime.findRunnable", "runtime.bgsweep", "runtime.bgscavenge", "runtime.mallocgc"}},
}

// shares sums a CPU profile's samples by area; what matches none is
// "other". Sorted by CPU, largest first.
func shares(p *profile.Profile, areas []area) ([]cpuShare, float64) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return nil, 0
	}
	sum := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		sum[classify(s, areas)] += v
	}
	out := make([]cpuShare, 0, len(sum))
	for w, v := range sum {
		out = append(out, cpuShare{What: w, Seconds: float64(v) / 1e9})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seconds != out[j].Seconds {
			return out[i].Seconds > out[j].Seconds
		}
		return out[i].What < out[j].What
	})
	return out, float64(total) / 1e9
}

func classify(s *profile.Sample, areas []area) string {
	for _, a := range areas {
		for _, loc := range s.Location {
			for _, ln := range loc.Line {
				if ln.Function == nil {
					continue
				}
				for _, m := range a.match {
					if strings.Contains(ln.Function.Name, m) {
						return a.what
					}
				}
			}
		}
	}
	return "other"
}

// profileCold runs one more cold build, with the engine's CPU profiled
// through buildkitd's debug address (on 127.0.0.1) for profileFor and the
// client's through BERTH_CPUPROFILE.
func profileCold(ctx context.Context, br *berthRunner, work string, profileFor time.Duration) (*coldProfile, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	wrapper := filepath.Join(work, "buildkitd-profiled")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --debugaddr %s \"$@\"\n", shellQuote(br.buildkitd), addr)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return nil, err
	}
	pr := *br
	pr.buildkitd = wrapper
	if err := resetEngine(ctx, pr.engineOpts(), br.trash); err != nil {
		return nil, err
	}
	// The next section starts its own engine: never this profiled one.
	defer func() {
		if err := resetEngine(context.WithoutCancel(ctx), pr.engineOpts(), br.trash); err != nil {
			log.Printf("cold profile: stop the engine: %v", err)
		}
	}()
	if err := br.resetCache(); err != nil {
		return nil, err
	}
	if err := br.trash.discard(filepath.Join(br.proj.Dir, "dist")); err != nil {
		return nil, err
	}
	settle()
	enginePprof, clientPprof := filepath.Join(work, "cold.engine.pprof"), filepath.Join(work, "cold.client.pprof")
	got := make(chan error, 1)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { got <- fetchProfile(pctx, addr, profileFor, enginePprof) }()
	cmd := pr.command(ctx, "build", br.proj.Dir, "--progress", "quiet")
	cmd.Env = append(cmd.Env, "BERTH_CPUPROFILE="+clientPprof)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("profiled cold build: %v\n%s", err, out)
	}
	wall := time.Since(start)
	if err := <-got; err != nil {
		return nil, err
	}
	cp := &coldProfile{Wall: wall.Seconds()}
	for _, f := range []struct {
		path  string
		areas []area
		out   *[]cpuShare
		total *float64
	}{
		{enginePprof, engineAreas, &cp.Engine, &cp.EngineTotal},
		{clientPprof, clientAreas, &cp.Client, &cp.ClientTotal},
	} {
		r, err := os.Open(f.path)
		if err != nil {
			return nil, err
		}
		p, err := profile.Parse(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		*f.out, *f.total = shares(p, f.areas)
	}
	return cp, nil
}

// fetchProfile waits (a minute at most) for the engine's debug address,
// then asks it for a CPU profile of d and writes it to path.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the engine's debug address %s did not answer: %v", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("engine profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("engine profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// section is the report's part for the profile: a table per process.
func (cp *coldProfile) section() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### CPU profile of one more cold berth build\n\n"+
		"Outside the measured runs (the profilers cost CPU): the same cold build (%.2f s), the engine's CPU profiled through buildkitd's `--debugaddr` on 127.0.0.1 and berth's through `BERTH_CPUPROFILE`, each sample counted under the first kind of work its stack shows (bench/coldprof.go). "+
		"This is the work berth does besides compiling, which the floor does not do: the compile and link processes are not in either profile.\n\n", cp.Wall)
	for _, p := range []struct {
		title  string
		total  float64
		shares []cpuShare
	}{
		{"engine (buildkitd)", cp.EngineTotal, cp.Engine},
		{"client (berth)", cp.ClientTotal, cp.Client},
	} {
		fmt.Fprintf(&b, "| %s: %.2f core-s | core-s | share |\n| --- | ---: | ---: |\n", p.title, p.total)
		for _, s := range p.shares {
			fmt.Fprintf(&b, "| %s | %.2f | %.0f%% |\n", s.What, s.Seconds, 100*s.Seconds/max(p.total, 1e-9))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// summary is a sentence for the cold miss: the largest parts of each.
func (cp *coldProfile) summary() string {
	part := func(total float64, ss []cpuShare) string {
		var out []string
		for i, s := range ss {
			if i == 3 {
				break
			}
			out = append(out, fmt.Sprintf("%s %.0f%%", s.What, 100*s.Seconds/max(total, 1e-9)))
		}
		return strings.Join(out, ", ")
	}
	return fmt.Sprintf(" A profiled cold build (section below) puts the engine's own %.1f core-s in %s, and the client's %.1f in %s.",
		cp.EngineTotal, part(cp.EngineTotal, cp.Engine), cp.ClientTotal, part(cp.ClientTotal, cp.Client))
}
