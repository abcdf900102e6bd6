package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// The load case (issue 6): a generated project of many trivial services
// × 2 platforms, built once by bin/berth on the warm engine of the berth
// runs, recording berth's own peak RSS.

type loadResult struct {
	Services, Platforms int
	Sample              sample
	Phases              []phase
	Recompiled          int
	Err                 string
}

// genLoad writes a module of n services, each a main package of its own
// over a shared internal package, for linux/amd64 and linux/arm64.
func genLoad(dir string, n int) error {
	files := map[string]string{
		"go.mod": "module example.com/load\n\ngo " + goVersion + "\n",
		"internal/common/common.go": "package common\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\n" +
			"// Greeting is what every service says.\nfunc Greeting(name string) string { return fmt.Sprintf(\"hello from %s\", strings.ToUpper(name)) }\n",
	}
	var cue strings.Builder
	fmt.Fprintf(&cue, "package berth\n\nproject: \"load\"\n\ndefaults: {\n\tplatforms: [%q, %q]\n\tbase: \"static\"\n}\n\nservices: {\n", platforms[0], platforms[1])
	for i := range n {
		name := fmt.Sprintf("s%03d", i)
		files["cmd/"+name+"/main.go"] = fmt.Sprintf("package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/load/internal/common\"\n)\n\nfunc main() { fmt.Println(common.Greeting(%q), %d) }\n", name, i)
		fmt.Fprintf(&cue, "\t%s: main: \"./cmd/%s\"\n", name, name)
	}
	cue.WriteString("}\n")
	files["berth.cue"] = cue.String()
	for name, body := range files {
		if err := writeFile(filepath.Join(dir, name), body); err != nil {
			return err
		}
	}
	return nil
}

// runLoad builds the load project once with the berth runner's engine.
func runLoad(ctx context.Context, br *berthRunner, dir string, n int) *loadResult {
	res := &loadResult{Services: n, Platforms: len(platforms)}
	if err := genLoad(dir, n); err != nil {
		res.Err = err.Error()
		return res
	}
	lb := *br
	lb.proj = &project{Dir: dir}
	s, run, err := lb.build(ctx)
	res.Sample = s
	if run != nil {
		res.Phases, res.Recompiled = run.Phases, len(run.Recompiled)
	}
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

func (l *loadResult) section() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Load (issue 6)\n\nOne `berth build` of a generated project of %d services × %d platforms (%d targets; each a main package over a shared internal package, `base: \"static\"`, images and binaries), on the engine the berth runs above left warm (the standard library is cached; every service compiles):\n\n", l.Services, l.Platforms, l.Services*l.Platforms)
	if l.Err != "" {
		fmt.Fprintf(&b, "- **failed:** %s\n", strings.SplitN(l.Err, "\n", 2)[0])
		return b.String()
	}
	fmt.Fprintf(&b, "- wall %s s; berth's own peak RSS **%s MB**; buildkitd's peak RSS %s MB; all processes, peak sum %s MB\n", secs(l.Sample.Wall), mb(l.Sample.ClientRSS), mb(l.Sample.DaemonRSS), mb(l.Sample.TreeRSS))
	fmt.Fprintf(&b, "- go build steps that ran: %d of %d targets\n", l.Recompiled, l.Services*l.Platforms)
	var ph []string
	for _, p := range l.Phases {
		ph = append(ph, fmt.Sprintf("%s %.2f s", p.Name, p.Seconds))
	}
	if len(ph) > 0 {
		fmt.Fprintf(&b, "- BERTH_TRACE phases: %s\n", strings.Join(ph, ", "))
	}
	b.WriteString("- the same build is an end-to-end test, `TestLoad200Services` (pkg/berth), which checks every binary and image and bounds berth's peak RSS\n")
	return b.String()
}
