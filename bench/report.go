package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/berthbuild/berth/pkg/dockerfile"
)

type caseName string

const (
	cold    caseName = "cold"
	warm    caseName = "warm"
	changed caseName = "changed"
)

var cases = []caseName{cold, warm, changed}

var caseTitle = map[caseName]string{
	cold:    "cold",
	warm:    "warm no-op",
	changed: "one service changed",
}

var paths = []string{"floor", "berth", "dockerfile"}

type results struct {
	cfg                 config
	started, finished   time.Time
	repo, buildkitd     string
	builderRef          string
	berthVersion        string   // git describe when the run started
	host                hostInfo // described when the run started
	engineConfig        string   // the buildkitd.toml berth wrote, if any
	proj                *project
	samples             map[string]map[caseName]series
	berthRuns           map[caseName][]*buildRun
	dfRuns              map[caseName][]*dfReport
	imgService          string
	berthImage, dfImage imageInfo
	scale               *scaleResult
	load                *loadResult
	coldProf            *coldProfile
}

func newResults(c config, started time.Time, repo, bk string) *results {
	return &results{
		cfg: c, started: started, repo: repo, buildkitd: bk,
		samples:   map[string]map[caseName]series{},
		berthRuns: map[caseName][]*buildRun{},
		dfRuns:    map[caseName][]*dfReport{},
	}
}

func (r *results) add(path string, c caseName, s sample) {
	if r.samples[path] == nil {
		r.samples[path] = map[caseName]series{}
	}
	r.samples[path][c] = append(r.samples[path][c], s)
}

func (r *results) med(path string, c caseName) (sample, bool) {
	ss := r.samples[path][c]
	if len(ss) == 0 {
		return sample{}, false
	}
	return ss.median(), true
}

func ratio(x, floor float64) string {
	if x <= 0 || floor <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x/floor)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func cpuSecs(d time.Duration) (string, float64) {
	if d <= 0 {
		return "—", 0
	}
	return secs(d), d.Seconds()
}

// table is the one table: every figure of every path, with its ratio to
// the floor's figure for the same case.
func (r *results) table() string {
	var b strings.Builder
	b.WriteString("| figure | floor | berth | berth × floor | Dockerfile | Dockerfile × floor |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: |\n")
	type fig struct {
		name string
		get  func(sample) (string, float64)
	}
	figs := []fig{
		{"wall (s)", func(s sample) (string, float64) { return secs(s.Wall), s.Wall.Seconds() }},
		{"client peak RSS (MB)", func(s sample) (string, float64) { return mb(s.ClientRSS), float64(s.ClientRSS) }},
		{"machine CPU busy (core-s)", func(s sample) (string, float64) {
			if s.CPU <= 0 {
				return "—", 0
			}
			return secs(s.CPU), s.CPU.Seconds()
		}},
		// The floor's go build runs in the client; berth's and the
		// Dockerfile's under the engine.
		{"CPU of go build, compile and link (core-s)", func(s sample) (string, float64) {
			if !s.OnEngine {
				return cpuSecs(s.ClientCPU)
			}
			return cpuSecs(s.StepsCPU)
		}},
		{"engine's own CPU (core-s)", func(s sample) (string, float64) {
			if !s.OnEngine {
				return "—", 0
			}
			return cpuSecs(s.EngineCPU)
		}},
		{"client's CPU (core-s)", func(s sample) (string, float64) {
			if !s.OnEngine {
				return "—", 0
			}
			return cpuSecs(s.ClientCPU)
		}},
		{"buildkitd RSS (MB)", func(s sample) (string, float64) { return mb(s.DaemonRSS), float64(s.DaemonRSS) }},
		{"all processes, peak sum (MB)", func(s sample) (string, float64) { return mb(s.TreeRSS), float64(s.TreeRSS) }},
		{"go build steps run", func(s sample) (string, float64) {
			if s.Rebuilt < 0 {
				return "—", 0
			}
			v := fmt.Sprint(s.Rebuilt)
			if s.Note != "" {
				v += " ✗"
			}
			return v, 0
		}},
	}
	for _, c := range cases {
		for _, f := range figs {
			row := []string{caseTitle[c] + ": " + f.name}
			fs, fok := r.med("floor", c)
			var floorV float64
			if fok {
				var v string
				v, floorV = f.get(fs)
				row = append(row, v)
			} else {
				row = append(row, "—")
			}
			for _, p := range []string{"berth", "dockerfile"} {
				s, ok := r.med(p, c)
				if !ok {
					row = append(row, "—", "—")
					continue
				}
				v, x := f.get(s)
				row = append(row, v, ratio(x, floorV))
			}
			b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
	}
	if r.berthImage.LayerBytes > 0 {
		fmt.Fprintf(&b, "| image bytes, %s linux/amd64 (sum of layers) | — | %d | — | %d | — |\n", r.imgService, r.berthImage.LayerBytes, r.dfImage.LayerBytes)
	}
	if s := r.scale; s != nil {
		p, l := s.Plan.median(), s.PlanLLB.median()
		fmt.Fprintf(&b, "| `berth plan`, %d services × %d platforms: wall (s) | — | %s | — | — | — |\n", s.Services, s.Platforms, secs(p.Wall))
		fmt.Fprintf(&b, "| `berth plan`, %d × %d: peak RSS (MB) | — | %s | — | — | — |\n", s.Services, s.Platforms, mb(p.ClientRSS))
		fmt.Fprintf(&b, "| plan + LLB, %d × %d: wall (s) | — | %s | — | — | — |\n", s.Services, s.Platforms, secs(l.Wall))
		fmt.Fprintf(&b, "| plan + LLB, %d × %d: peak RSS (MB) | — | %s | — | — | — |\n", s.Services, s.Platforms, mb(l.ClientRSS))
	}
	return b.String()
}

// goal is one of the goals and where it stands.
type goal struct {
	name, target, measured string
	met, known             bool
	why                    string // for a miss: the profile
}

// pairedRatio is the median, over the rounds, of a path's wall time
// against the floor's in the same round (minutes apart), and the rounds'
// ratios: a machine that changes speed between rounds moves it less than
// a ratio of medians, which pairs runs from different rounds.
func (r *results) pairedRatio(path string, cs caseName) (float64, string, bool) {
	ps, fl := r.samples[path][cs], r.samples["floor"][cs]
	var xs []float64
	var cells []string
	for i, s := range ps {
		if i < len(fl) && fl[i].Wall > 0 && s.Wall > 0 {
			x := s.Wall.Seconds() / fl[i].Wall.Seconds()
			xs = append(xs, x)
			cells = append(cells, fmt.Sprintf("%.2f×", x))
		}
	}
	if len(xs) == 0 {
		return 0, "", false
	}
	sorted := append([]float64(nil), xs...)
	sort.Float64s(sorted)
	m := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		m = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return m, strings.Join(cells, ", "), true
}

func (r *results) goals() []goal {
	var gs []goal
	fc, fok := r.med("floor", cold)
	bc, bok := r.med("berth", cold)
	g := goal{name: "cold build, reproducible settings on", target: "≤ 1.0× the cold floor"}
	if x, rounds, ok := r.pairedRatio("berth", cold); fok && bok && ok {
		g.known, g.met = true, x <= 1.0
		g.measured = fmt.Sprintf("%.2f× (median of the rounds' ratios %s; medians %s s against %s s)", x, rounds, secs(bc.Wall), secs(fc.Wall))
		if !g.met {
			g.why = r.explainBerth(cold, time.Duration((x-1)*float64(fc.Wall))) + r.coldExtra(fc.Wall)
		}
	}
	gs = append(gs, g)

	bw, ok := r.med("berth", warm)
	g = goal{name: "warm no-op, end to end, engine connection included", target: "≤ 0.5 s"}
	if ok {
		g.known, g.met = true, bw.Wall <= 500*time.Millisecond
		g.measured = secs(bw.Wall) + " s"
		if bw.Note != "" {
			g.met = false
			g.measured += "; " + bw.Note
		}
		if !g.met {
			g.why = r.explainBerth(warm, bw.Wall-500*time.Millisecond)
		}
	}
	gs = append(gs, g)

	fch, fok := r.med("floor", changed)
	bch, bok := r.med("berth", changed)
	g = goal{name: "one service changed", target: "≤ 1.2× the floor for the same change, only that service's binaries recompiled"}
	if x, rounds, ok := r.pairedRatio("berth", changed); fok && bok && ok {
		g.known, g.met = true, x <= 1.2 && bch.Note == ""
		g.measured = fmt.Sprintf("%.2f× (median of the rounds' ratios %s; medians %s s against %s s); ", x, rounds, secs(bch.Wall), secs(fch.Wall))
		if bch.Note == "" {
			g.measured += fmt.Sprintf("recompiled only %s in every run", strings.Join(targetsOf([]string{r.proj.changed()}, platforms), " and "))
		} else {
			g.measured += bch.Note
		}
		if !g.met {
			g.why = r.explainBerth(changed, time.Duration((x-1.2)*float64(fch.Wall)))
		}
	}
	gs = append(gs, g)

	g = goal{name: "image bytes", target: "no larger than the Dockerfile path's for the same binary"}
	if r.berthImage.LayerBytes > 0 && r.dfImage.LayerBytes > 0 {
		same := r.berthImage.BinarySHA != "" && r.berthImage.BinarySHA == r.dfImage.BinarySHA
		g.known, g.met = true, r.berthImage.LayerBytes <= r.dfImage.LayerBytes
		g.measured = fmt.Sprintf("%d bytes in %d layer(s) against %d in %d (%s linux/amd64); binaries %s", r.berthImage.LayerBytes, r.berthImage.Layers, r.dfImage.LayerBytes, r.dfImage.Layers, r.imgService, map[bool]string{true: "identical (sha256 " + short(r.berthImage.BinarySHA) + ")", false: "differ: berth " + short(r.berthImage.BinarySHA) + ", Dockerfile " + short(r.dfImage.BinarySHA)}[same])
		if !g.met {
			g.why = fmt.Sprintf("berth's layers hold %d bytes more (compressed) for a binary of %d bytes in berth's image and %d in the Dockerfile's; berth's layer entries: %s; the Dockerfile's: %s.",
				r.berthImage.LayerBytes-r.dfImage.LayerBytes, r.berthImage.BinarySize, r.dfImage.BinarySize, entryList(r.berthImage.Entries), entryList(r.dfImage.Entries))
		}
	}
	gs = append(gs, g)

	g = goal{name: fmt.Sprintf("%d services × 3 platforms: plan + LLB", r.cfg.scale), target: "< 1 s and < 300 MB"}
	if s := r.scale; s != nil {
		l := s.PlanLLB.median()
		g.known = true
		g.met = l.Wall < time.Second && l.ClientRSS < 300<<20
		var planS, llbS []time.Duration
		for _, st := range s.LLB {
			planS = append(planS, time.Duration(st.PlanSeconds*float64(time.Second)))
			llbS = append(llbS, time.Duration(st.LLBSeconds*float64(time.Second)))
		}
		g.measured = fmt.Sprintf("%s s, %s MB (load + plan %s s, LLB generate + marshal %s s, process start included); `berth plan` alone %s s, %s MB",
			secs(l.Wall), mb(l.ClientRSS), secs(medianDur(planS)), secs(medianDur(llbS)), secs(s.Plan.median().Wall), mb(s.Plan.median().ClientRSS))
		if !g.met {
			var defMB, perImageKB float64
			if len(s.LLB) > 0 && s.LLB[0].Images > 0 {
				defMB = float64(s.LLB[0].DefBytes) / (1 << 20)
				perImageKB = float64(s.LLB[0].DefBytes) / float64(s.LLB[0].Images) / 1024
			}
			g.why = fmt.Sprintf("Of the %s s, loading, validating and planning the CUE takes %s s and the LLB %s s; `berth plan` (no LLB) alone peaks at %s MB, so the memory is the LLB's: "+
				"every image's definition is sliced from one marshal of all of them, %.0f MB of definitions in all, %.0f KB per image. The CPU and allocation profiles of this run are in the Scale section.",
				secs(l.Wall), secs(medianDur(planS)), secs(medianDur(llbS)), mb(s.Plan.median().ClientRSS), defMB, perImageKB)
		}
	}
	gs = append(gs, g)
	return gs
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "none found"
	}
	return sha
}

func (r *results) report(table string) (string, error) {
	var b strings.Builder
	c := r.cfg
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `go run ./bench` (`make bench`); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "- **Date:** %s (the run took %s)\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second))
	fmt.Fprintf(&b, "- **Machine:** %s\n", r.host.Machine)
	fmt.Fprintf(&b, "- **Go:** %s\n", r.host.Go)
	fmt.Fprintf(&b, "- **BuildKit:** %s (go.mod; the daemon, %s, is built from that module and reports `%s`)\n", r.host.BuildKit, r.buildkitd, r.host.Daemon)
	bv := r.berthVersion
	if bv == "" {
		bv = cmdOut(r.repo, "git", "describe", "--tags", "--always", "--dirty")
	}
	fmt.Fprintf(&b, "- **berth:** %s (bin/berth built from this tree when the run started)\n", bv)
	deps := "standard library only"
	if c.deps {
		var ds []string
		for _, d := range extraDeps {
			ds = append(ds, d[0]+" "+d[1])
		}
		deps = "standard library plus " + strings.Join(ds, ", ")
	}
	fmt.Fprintf(&b, "- **Project:** %d generated services × 2 platforms (%s) = %d targets, one module, %s, a shared internal package; `base: \"scratch\"`\n", c.n, strings.Join(platforms, ", "), 2*c.n, deps)
	fmt.Fprintf(&b, "- **Runs:** every figure is the median of %d run(s)\n\n", c.runs)
	b.WriteString("Other work may run on this machine at the same time (2 cores): absolute figures are noisy. " +
		"Ratios compare paths measured in the same run, interleaved (floor, berth, Dockerfile, then again), so they are the figures to read. " +
		"The table's ratios are of medians; a goal's ratio is the median of the rounds' own ratios (each run against the floor's run of the same round, minutes apart), which a machine that changes speed between rounds moves less.\n\n")

	b.WriteString("## Results\n\n")
	b.WriteString(table)
	b.WriteString("\nWall times of every run, in order (s), with the ratio to the floor's run of the same round:\n\n| path | case | runs |\n| --- | --- | --- |\n")
	for _, p := range paths {
		for _, cs := range cases {
			ss := r.samples[p][cs]
			if len(ss) == 0 {
				continue
			}
			fl := r.samples["floor"][cs]
			var cells []string
			for i, s := range ss {
				c := secs(s.Wall)
				if p != "floor" && i < len(fl) && fl[i].Wall > 0 {
					c += fmt.Sprintf(" (%.2f×)", s.Wall.Seconds()/fl[i].Wall.Seconds())
				}
				cells = append(cells, c)
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", p, caseTitle[cs], strings.Join(cells, ", "))
		}
	}
	if n := r.samples["berth"][changed]; len(n) > 0 {
		var notes []string
		for i, s := range n {
			if s.Note != "" {
				notes = append(notes, fmt.Sprintf("run %d: %s", i+1, s.Note))
			}
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, "\n**Recompilation check failed:** %s\n", strings.Join(notes, "; "))
		}
	}

	b.WriteString("\n## Goals (issue 5)\n\n| goal | target | measured | status |\n| --- | --- | --- | --- |\n")
	gs := r.goals()
	for _, g := range gs {
		st := "not measured"
		if g.known {
			st = map[bool]string{true: "**met**", false: "**missed**"}[g.met]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.name, g.target, g.measured, st)
	}
	var misses []goal
	for _, g := range gs {
		if g.known && !g.met {
			misses = append(misses, g)
		}
	}
	if len(misses) > 0 {
		b.WriteString("\n### Misses, from the profile\n\n")
		for _, g := range misses {
			fmt.Fprintf(&b, "- **%s** (%s): %s\n", g.name, g.measured, g.why)
		}
	}

	b.WriteString("\n## Where berth's time goes (BERTH_TRACE=1, medians)\n\n")
	if len(r.berthRuns) > 0 {
		b.WriteString("| phase |")
		for _, cs := range cases {
			fmt.Fprintf(&b, " %s (s) |", caseTitle[cs])
		}
		b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(cases)) + "\n")
		var order []string
		val := map[caseName]map[string]float64{}
		for _, cs := range cases {
			val[cs] = map[string]float64{}
			for _, p := range medianPhases(r.berthRuns[cs]) {
				if !contains(order, p.Name) {
					order = append(order, p.Name)
				}
				val[cs][p.Name] = p.Seconds
			}
		}
		for _, n := range order {
			fmt.Fprintf(&b, "| %s |", n)
			for _, cs := range cases {
				if v, ok := val[cs][n]; ok {
					fmt.Fprintf(&b, " %.3f |", v)
				} else {
					b.WriteString(" — |")
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\nEach phase is the time since the previous mark; `done` is the rest (side outputs: Dockerfiles, units, bundles). The longest steps that ran, last run of each case:\n\n")
		for _, cs := range cases {
			runs := r.berthRuns[cs]
			if len(runs) == 0 || runs[len(runs)-1] == nil {
				continue
			}
			var top []string
			for _, v := range runs[len(runs)-1].Top {
				top = append(top, fmt.Sprintf("`%s` %.2f s", strings.TrimSpace(v.Name), v.Seconds))
			}
			if len(top) == 0 {
				top = []string{"none (every step cached)"}
			}
			fmt.Fprintf(&b, "- berth %s: %s\n", caseTitle[cs], strings.Join(top, "; "))
		}
		for _, cs := range cases {
			reps := r.dfRuns[cs]
			if len(reps) == 0 || reps[len(reps)-1] == nil {
				continue
			}
			var top []string
			for _, v := range reps[len(reps)-1].Top {
				top = append(top, fmt.Sprintf("`%s` %.2f s", truncate(strings.TrimSpace(v.Name), 90), v.Seconds))
			}
			if len(top) == 0 {
				top = []string{"none (every step cached)"}
			}
			fmt.Fprintf(&b, "- Dockerfile %s: %s\n", caseTitle[cs], strings.Join(top, "; "))
		}
	}

	if r.coldProf != nil {
		b.WriteString(r.coldProf.section())
	}
	if s := r.scale; s != nil {
		b.WriteString(r.scaleSection())
	}
	if l := r.load; l != nil {
		b.WriteString(l.section())
	}

	b.WriteString("\n## Method\n\n")
	b.WriteString(r.method())
	return b.String(), nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (r *results) scaleSection() string {
	s := r.scale
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Scale\n\n%d generated services × %d platforms (linux/amd64, linux/arm64, linux/arm/v7), each with args, env, a port and limits, medians of %d runs:\n\n", s.Services, s.Platforms, len(s.Plan))
	p, l := s.Plan.median(), s.PlanLLB.median()
	fmt.Fprintf(&b, "- `berth plan` (a process: start, load, validate, plan, print): %s s, peak RSS %s MB\n", secs(p.Wall), mb(p.ClientRSS))
	var st llbStats
	if len(s.LLB) > 0 {
		st = s.LLB[0]
	}
	perImage := int64(0)
	if st.Images > 0 {
		perImage = st.DefBytes / int64(st.Images)
	}
	fmt.Fprintf(&b, "- plan + LLB (a process: the same, then generate the graph and marshal the binaries' graph and each of the %d images' graphs, as `berth build`'s solves do: %d ops, %.1f MB of marshalled definitions, %.0f KB per image): %s s, peak RSS %s MB\n\n",
		st.Images, st.Ops, float64(st.DefBytes)/(1<<20), float64(perImage)/1024, secs(l.Wall), mb(l.ClientRSS))
	if s.Profile != "" {
		var keep []string
		for _, l := range strings.Split(s.Profile, "\n") {
			if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
				continue
			}
			keep = append(keep, l)
		}
		fmt.Fprintf(&b, "Profile of one more plan + LLB run of the %d-service project (`go tool pprof -top -cum`):\n\n```\n%s```\n\n", s.Services, strings.Join(keep, "\n"))
	}
	if s.GoBenchErr != "" {
		fmt.Fprintf(&b, "Go benchmarks failed:\n\n```\n%s```\n\n", s.GoBenchErr)
	}
	if len(s.GoBench) == 0 {
		return b.String()
	}
	b.WriteString("Go benchmarks (`go test -run '^$' -bench LoadPlan -benchmem ./pkg/berth`, `-bench PlanLLB ./bench`):\n\n```\n")
	for _, l := range s.GoBench {
		b.WriteString(l.Raw + "\n")
	}
	b.WriteString("```\n\n| benchmark | services | ns/op | ns/op per service | B/op per service | allocs/op per service |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	byName := map[string][]benchLine{}
	var names []string
	for _, l := range s.GoBench {
		base, _, _ := strings.Cut(l.Name, "/")
		if _, ok := byName[base]; !ok {
			names = append(names, base)
		}
		byName[base] = append(byName[base], l)
	}
	for _, n := range names {
		ls := byName[n]
		sort.Slice(ls, func(i, j int) bool { return servicesOf(ls[i].Name) < servicesOf(ls[j].Name) })
		for _, l := range ls {
			k := float64(servicesOf(l.Name))
			if k == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.0f | %.1f |\n", n, int(k), l.Metrics["ns/op"], l.Metrics["ns/op"]/k, l.Metrics["B/op"]/k, l.Metrics["allocs/op"]/k)
		}
	}
	b.WriteString("\n")
	for _, n := range names {
		ls := byName[n]
		first, last := ls[0], ls[len(ls)-1]
		n0, n1 := float64(servicesOf(first.Name)), float64(servicesOf(last.Name))
		t0, t1 := first.Metrics["ns/op"], last.Metrics["ns/op"]
		if n0 <= 0 || n1 <= n0 || t0 <= 0 {
			continue
		}
		k := math.Log(t1/t0) / math.Log(n1/n0)
		verdict := "linear or better"
		if k > 1.05 {
			verdict = "worse than linear"
		}
		fmt.Fprintf(&b, "- %s: from %d to %d services the time grows %.0f× for %.0f× the services, an exponent of %.2f: **%s**; per service %.0f µs at %d, %.0f µs at %d.\n",
			n, int(n0), int(n1), t1/t0, n1/n0, k, verdict, t0/n0/1e3, int(n0), t1/n1/1e3, int(n1))
	}
	return b.String()
}

func (r *results) method() string {
	c := r.cfg
	floorFlags := strings.ReplaceAll(dockerfile.ShellJoin(r.proj.Flags), "%", "%%") // in the format below
	var b strings.Builder
	fmt.Fprintf(&b, `The harness (bench/) generates a Go module of %d services: each a main package under cmd/<service>
with a package of its own under internal/<service> (40 typed JSON endpoints and a different slice of the
standard library: xml and html/template, gzip/zip/tar, database/sql and csv, image codecs, smtp/mail/multipart,
go/parser and go/format, ecdsa/ed25519/x509, regexp/text/template/gob/big), all sharing internal/common
(net/http, encoding/json, crypto/sha256, log/slog). berth.cue builds every service for linux/amd64 and linux/arm64
on the scratch base. For each of the -runs runs, the three paths run in turn, each through three cases:
**cold**, **warm no-op** (the same tree again), **one service changed** (cmd/%s/mark.go gets a new constant,
so that service's binary changes).

- **floor**: the host's go build, one invocation per platform (`+"`CGO_ENABLED=0 GOOS=… GOARCH=… go build "+floorFlags+" -o out/<os>_<arch>/ ./cmd/...`"+`),
  with the flags berth's plan gives every target (the hand-written Dockerfiles use them too, so the three paths build the same binaries),
  cold = empty GOCACHE (and GOMODCACHE), no images. Its wall time is the two invocations' sum.
- **berth**: `+"`bin/berth build DIR --progress rawjson`"+` with BERTH_TRACE=1 as a subprocess, on the embedded engine
  (%s built from BuildKit %s, runc) in the benchmark's own state directory; cold = the engine stopped and its state deleted
  (so the run includes starting buildkitd and sending it the toolchain) and berth's cache dir emptied (go list
  cache, OCI stores, extracted binaries) but for the toolchain image and the static base's files, which berth
  derives once per machine from the installed Go and from itself, as the Dockerfile path's builder image is pushed
  to its registry once (a one-service build packs them before the first run); it writes everything berth build
  writes by default (OCI layout, binaries, Dockerfiles, systemd units, bundles). The go build steps that ran are
  read from the rawjson progress: vertices named
  `+"`[berth] go build <service> (<platform>)`"+` that completed and were not cached; the expected set (all 2×N cold,
  none warm, the changed service's 2 after the change) is asserted every run (✗ in the table if not).
- **Dockerfile**: the canonical multi-stage Dockerfile per service (below), `+"`FROM --platform=$BUILDPLATFORM`"+` a Go
  builder image pinned by digest, served by a registry on 127.0.0.1 (the pinned Go %s toolchain at /usr/local/go,
  static busybox, CA bundle, the official image's environment), built by BuildKit's dockerfile.v0 frontend on the
  same buildkitd as berth with platform=%s: one solve per service, all at once (as bake runs a group), each
  exporting a multi-platform OCI tarball, from a client process of its own; cold = fresh engine state, so it pulls
  the builder image; reproducible timestamps (SOURCE_DATE_EPOCH, rewrite-timestamp) %s.

%s
Before every measured run (every path, every case) the harness calls sync(2), which returns once the dirty pages of
the previous run or reset are written back (GBs after a cold build or a deleted engine state), and waits %s: what
one run leaves in flight is not counted in the next one's time. Both happen before the run's clock starts. What a
reset deletes (an engine state, a build cache, outputs) is moved aside, one rename, and deleted when the benchmark
ends: ext4 allocates inodes slowly for a minute after many were freed (measured here: extracting the toolchain's
4,210 files took 2.5–4.7 s of system time within a minute of deleting as many, 0.4 s after 75 s), a cost no fresh
machine's cold build pays; a run within %s of a deletion the benchmark made waits for that much to pass.
CPU: **machine CPU busy** is the busy time of all cores during the run (user, nice, system, irq and softirq of
/proc/stat; idle, iowait and steal left out): every process and the kernel, so it counts other work on the machine
too. Cores × wall minus it is what stayed idle. CPU speed varies from run to run on a shared machine, so this
figure is as noisy as wall time; its ratio says how much more work a path did. It is split three ways from
process times: **go build, compile and link** is the floor's go build with its children (rusage) and, for the
engine paths, the processes buildkitd started and reaped during the run (cutime and cstime of /proc/PID/stat: the
build steps' runc and what ran in its containers); **engine's own** is buildkitd's utime and stime (exporting and
compressing layers, unpacking, snapshots); **client's** is the client's rusage (berth with its go list).
Memory: **client peak RSS** is the kernel's maxrss of the command (the largest single process among it and its
waited-for children: go build → compile/link for the floor; berth → go list for berth); **buildkitd RSS** is the
daemon's own RSS, sampled every %s (VmRSS, since VmHWM of a daemon that outlives runs would carry earlier peaks);
**all processes, peak sum** is the largest sampled sum of the RSS of the client's process tree plus buildkitd's
(runc and the compilers it runs inside containers), the figure comparable across paths.
Image bytes: the sum of the layer sizes (compressed, as stored) of one service's linux/amd64 image, read from berth's
OCI layout and from the Dockerfile path's OCI tarball; the binaries inside are compared by sha256.

The hand-written Dockerfile (for one service):

`+"```dockerfile\n%s```\n", c.n, r.changedName(), r.buildkitd, cmdOut(r.repo, "go", "list", "-m", "-f", "{{.Version}}", "github.com/moby/buildkit"), goVersion, strings.Join(platforms, ","), map[bool]string{true: "on (-df-repro)", false: "off (the Dockerfile as users write it; -df-repro turns them on)"}[c.dfRepro], r.engineNote(), settlePause, quietAfterDelete, sampleEvery, r.dockerfileExample())
	return b.String()
}

func (r *results) changedName() string {
	if r.proj == nil || len(r.proj.Services) == 0 {
		return "<service>"
	}
	return r.proj.changed()
}

func (r *results) dockerfileExample() string {
	if r.proj == nil || len(r.proj.Services) == 0 {
		return ""
	}
	ref := r.builderRef
	if ref == "" {
		ref = "127.0.0.1:PORT/golang@sha256:…"
	}
	return r.proj.dockerfile(r.proj.Services[0], ref)
}

func cmdOut(dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// hostInfo is what a report says of the machine and the tools a run
// measured on, described when it starts: a report rendered again
// (-report-from) shows the run's, not the renderer's.
type hostInfo struct {
	Machine  string // machine()
	Go       string // go version
	BuildKit string // the buildkit module's version in go.mod
	Daemon   string // buildkitd --version
}

// describeHost fills what r.host lacks from this machine.
func (r *results) describeHost() {
	h := &r.host
	if h.Machine == "" {
		h.Machine = machine()
	}
	if h.Go == "" {
		h.Go = cmdOut(r.repo, "go", "version")
	}
	if h.BuildKit == "" {
		h.BuildKit = cmdOut(r.repo, "go", "list", "-m", "-f", "{{.Version}}", "github.com/moby/buildkit")
	}
	if h.Daemon == "" {
		h.Daemon = cmdOut(r.repo, r.buildkitd, "--version")
	}
}

// machine describes the host: cores, memory, CPU model, kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				var kb float64
				fmt.Sscan(f[1], &kb)
				mem = fmt.Sprintf("%.1f GiB memory", kb/(1<<20))
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	out := fmt.Sprintf("%d cores (nproc), %s, %s%s, %s/%s", runtime.NumCPU(), model, mem, kernel, runtime.GOOS, runtime.GOARCH)
	if freePageReporting("/sys") {
		out += "; a VM whose balloon reports free pages to its host (memory a process frees goes back to the host, so a page touched anew costs a fault in the host as well as in the guest: processes that touch much fresh memory, such as compiles with the collector off, spend more time in the kernel than on bare metal)"
	}
	return out
}

// freePageReporting reports whether a virtio balloon under sys (the
// sysfs root) has negotiated free page reporting (VIRTIO_BALLOON_F_REPORTING,
// feature bit 5; the balloon is device 0x0005). sysfs shows a device's
// negotiated features as one '0' or '1' per bit, bit 0 first.
func freePageReporting(sys string) bool {
	devs, _ := filepath.Glob(filepath.Join(sys, "bus", "virtio", "devices", "*"))
	for _, d := range devs {
		id, err := os.ReadFile(filepath.Join(d, "device"))
		if err != nil || strings.TrimSpace(string(id)) != "0x0005" {
			continue
		}
		f, err := os.ReadFile(filepath.Join(d, "features"))
		if err == nil && len(f) > 5 && f[5] == '1' {
			return true
		}
	}
	return false
}

func entryList(names []string) string {
	if len(names) > 12 {
		return fmt.Sprintf("%d entries", len(names))
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}

// engineNote says how the shared engine was configured: its settings
// (such as how many steps run at once) apply to both BuildKit paths.
func (r *results) engineNote() string {
	if strings.TrimSpace(r.engineConfig) == "" {
		return "Both BuildKit paths run on the daemon berth's pkg/engine starts, with its default settings.\n"
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.engineConfig), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, "`"+l+"`")
		}
	}
	return "Both BuildKit paths run on the daemon berth's pkg/engine starts, with the buildkitd.toml berth wrote for it: " + strings.Join(lines, " ") + " (so at most that many steps run at once, on either path).\n"
}
