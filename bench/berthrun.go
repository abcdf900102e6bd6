package main

// berth runs as users run it: `bin/berth build DIR --progress rawjson` in
// a process of its own (so its RSS is its own), with BERTH_TRACE=1 for the
// per-phase timings, on the embedded engine kept in a state directory of
// the benchmark's.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/berthbuild/berth/pkg/engine"
)

type berthRunner struct {
	bin       string // bin/berth
	buildkitd string
	stateHome string // XDG_STATE_HOME: the engine lives under it
	cacheHome string // XDG_CACHE_HOME: go list cache, toolchain copy, OCI stores
	proj      *project
	trash     *trash
}

func (b *berthRunner) engineOpts() engine.Options {
	return engine.Options{StateDir: filepath.Join(b.stateHome, "berth"), Buildkitd: b.buildkitd}
}

func (b *berthRunner) daemon() daemonPID {
	p, err := engine.EnginePaths(b.engineOpts())
	if err != nil {
		return func() int { return 0 }
	}
	return pidFromFile(p.PID)
}

// kept are the entries of berth's cache directory that a cold run keeps:
// what berth derives once per machine from what is installed, not from
// the project. The toolchain image is packed from the installed Go (as
// the Dockerfile path's builder image stays in its registry across cold
// runs); the static base's files come from the berth binary and the
// host's CA bundle. Each cold run still sends both to an engine that has
// never seen them.
var kept = map[string]bool{"toolchain-images": true, "static": true}

// resetCache empties berth's cache directory but for kept: no go list
// answers, no OCI stores, no extracted binaries.
func (b *berthRunner) resetCache() error {
	dir := filepath.Join(b.cacheHome, "berth")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range ents {
		if !kept[e.Name()] {
			if err := b.trash.discard(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// prime empties berth's cache directory, then builds a one-service
// project in dir once, so that what a cold run keeps (kept) is there
// before the first one, as the Dockerfile path's builder image is pushed
// before its first run.
func (b *berthRunner) prime(ctx context.Context, dir string) error {
	if err := b.trash.discard(b.cacheHome); err != nil {
		return err
	}
	if err := b.trash.discard(dir); err != nil {
		return err
	}
	files := map[string]string{
		"go.mod":  "module example.com/prime\n\ngo " + goVersion + "\n",
		"main.go": "package main\n\nfunc main() {}\n",
		"berth.cue": "package berth\n\nproject: \"prime\"\ngo: version: \"" + goVersion + "\"\n\n" +
			"services: prime: {\n\tmain: \".\"\n\tplatforms: [\"linux/amd64\"]\n\tbase: \"scratch\"\n" +
			"\toutputs: {image: false, systemd: false, dockerfile: false}\n}\n",
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	cmd := b.command(ctx, "build", dir, "--progress", "plain")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("berth build %s: %v\n%s", dir, err, out)
	}
	if _, err := os.Stat(filepath.Join(b.cacheHome, "berth", "toolchain-images")); err != nil {
		return fmt.Errorf("priming berth's cache: %w", err)
	}
	return nil
}

// resetEngine stops the engine and discards its state: the next build
// starts a daemon on an empty root, as on a fresh machine.
func resetEngine(ctx context.Context, o engine.Options, discarded *trash) error {
	if _, err := engine.Stop(ctx, o); err != nil {
		return err
	}
	return discarded.discard(o.StateDir)
}

// phase is one BERTH_TRACE line.
type phase struct {
	Name    string
	Seconds float64
}

// vertexTime is a step that ran, with how long it took.
type vertexTime struct {
	Name    string
	Seconds float64
}

// buildRun is what a berth build reported besides its measurements.
type buildRun struct {
	Phases     []phase
	Recompiled []string // "<service> (<platform>)" of go build steps that ran
	Top        []vertexTime
	Timeline   []span
	Stdout     string
}

// span is a part of a solve, in seconds from the start of its first step
// that ran.
type span struct {
	Name       string
	Start, End float64
}

var traceLine = regexp.MustCompile(`^berth: trace (.+?)\s+([0-9.]+)s \(total [0-9.]+s\)$`)

// command is berth with args, on the benchmark's engine state and cache.
func (b *berthRunner) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+b.stateHome, "XDG_CACHE_HOME="+b.cacheHome, "BERTH_BUILDKITD="+b.buildkitd)
	return cmd
}

// build runs one berth build of the project.
func (b *berthRunner) build(ctx context.Context) (sample, *buildRun, error) {
	cmd := b.command(ctx, "build", b.proj.Dir, "--progress", "rawjson")
	cmd.Env = append(cmd.Env, "BERTH_TRACE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	s, err := runMeasured(cmd, b.daemon())
	run := parseBuildOutput(stderr.Bytes())
	run.Stdout = stdout.String()
	if err != nil {
		return s, run, fmt.Errorf("berth build: %v\n%s", err, lastLines(nonJSON(stderr.Bytes()), 40))
	}
	s.Rebuilt = len(run.Recompiled)
	return s, run, nil
}

// parseBuildOutput reads the rawjson progress and the trace lines.
func parseBuildOutput(stderr []byte) *buildRun {
	run := &buildRun{}
	vs := map[string]*client.Vertex{}
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if m := traceLine.FindSubmatch(line); m != nil {
			sec, _ := strconv.ParseFloat(string(m[2]), 64)
			run.Phases = append(run.Phases, phase{Name: string(m[1]), Seconds: sec})
			continue
		}
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var st client.SolveStatus
		if json.Unmarshal(line, &st) != nil {
			continue
		}
		mergeVertices(vs, st.Vertexes)
	}
	ran := ranVertices(vs)
	seen := map[string]bool{}
	for _, v := range ran {
		// The standard library's and the shared packages' steps build no
		// service's binary.
		if svc, ok := strings.CutPrefix(v.Name, "[berth] go build "); ok && !strings.HasPrefix(svc, "std ") && !strings.HasPrefix(svc, "shared ") && !seen[svc] {
			seen[svc] = true
			run.Recompiled = append(run.Recompiled, svc)
		}
	}
	sort.Strings(run.Recompiled)
	run.Top = topVertices(ran, 6)
	run.Timeline = timeline(ran)
	return run
}

// timeline groups the steps that ran, in the order they started: the
// toolchain, each standard-library and shared-packages step, each
// platform's service steps (from the first start to the last end), each
// export (a solve's: berth exports each platform's images when they are
// built).
func timeline(ran []*client.Vertex) []span {
	var t0 time.Time
	for _, v := range ran {
		if v.Started != nil && (t0.IsZero() || v.Started.Before(t0)) {
			t0 = *v.Started
		}
	}
	groups := map[string]*span{}
	var out []*span
	for _, v := range ran {
		name := timelineGroup(v.Name)
		if name == "" || v.Started == nil || v.Completed == nil {
			continue
		}
		s, e := v.Started.Sub(t0).Seconds(), v.Completed.Sub(t0).Seconds()
		if g := groups[name]; g != nil && name != "export" {
			g.Start, g.End = min(g.Start, s), max(g.End, e)
			continue
		}
		groups[name] = &span{Name: name, Start: s, End: e}
		out = append(out, groups[name])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	spans := make([]span, len(out))
	for i, g := range out {
		spans[i] = *g
	}
	return spans
}

// timelineGroup is the span a step belongs to, "" for none.
func timelineGroup(name string) string {
	switch {
	case strings.HasPrefix(name, "[berth] Go ") && strings.HasSuffix(name, " toolchain"):
		return "toolchain"
	case strings.HasPrefix(name, "exporting to "):
		return "export"
	}
	rest, ok := strings.CutPrefix(name, "[berth] go build ")
	if !ok {
		return ""
	}
	kind, arg, ok := strings.Cut(rest, " (")
	if !ok {
		return ""
	}
	pf, _, _ := strings.Cut(strings.TrimSuffix(arg, ")"), ",")
	if kind != "std" && kind != "shared" {
		kind = "services"
	}
	return kind + " (" + pf + ")"
}

// mergeVertices keeps the latest state of each vertex.
func mergeVertices(vs map[string]*client.Vertex, updates []*client.Vertex) {
	for _, v := range updates {
		k := v.Digest.String()
		old := vs[k]
		if old == nil {
			c := *v
			vs[k] = &c
			continue
		}
		if v.Name != "" {
			old.Name = v.Name
		}
		if v.Started != nil && (old.Started == nil || v.Started.Before(*old.Started)) {
			old.Started = v.Started
		}
		if v.Completed != nil {
			old.Completed = v.Completed
		}
		old.Cached = old.Cached || v.Cached
		if v.Error != "" {
			old.Error = v.Error
		}
	}
}

// ranVertices are the steps that completed without the cache.
func ranVertices(vs map[string]*client.Vertex) []*client.Vertex {
	var out []*client.Vertex
	for _, v := range vs {
		if v.Completed != nil && !v.Cached && v.Error == "" {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func topVertices(vs []*client.Vertex, n int) []vertexTime {
	var out []vertexTime
	for _, v := range vs {
		if v.Started == nil || v.Completed == nil {
			continue
		}
		out = append(out, vertexTime{Name: v.Name, Seconds: v.Completed.Sub(*v.Started).Seconds()})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func nonJSON(b []byte) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkRecompiled compares the go build steps that ran with the targets
// expected to: every target when cold, none when warm, the changed
// service's when one changed.
func checkRecompiled(got []string, want []string) string {
	g := strings.Join(got, ", ")
	w := strings.Join(want, ", ")
	if g == w {
		return ""
	}
	if g == "" {
		g = "none"
	}
	if w == "" {
		w = "none"
	}
	return fmt.Sprintf("recompiled %s; expected %s", g, w)
}

// targetsOf names the go build steps of services on the platforms.
func targetsOf(services, platforms []string) []string {
	var out []string
	for _, s := range services {
		for _, p := range platforms {
			out = append(out, s+" ("+p+")")
		}
	}
	sort.Strings(out)
	return out
}

// medianPhases is the median of each trace phase over runs.
func medianPhases(runs []*buildRun) []phase {
	var order []string
	vals := map[string][]time.Duration{}
	for _, r := range runs {
		if r == nil {
			continue
		}
		for _, p := range r.Phases {
			if _, ok := vals[p.Name]; !ok {
				order = append(order, p.Name)
			}
			vals[p.Name] = append(vals[p.Name], time.Duration(p.Seconds*float64(time.Second)))
		}
	}
	var out []phase
	for _, n := range order {
		out = append(out, phase{Name: n, Seconds: medianDur(vals[n]).Seconds()})
	}
	return out
}
