package dockerfile

import (
	"bytes"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/berthbuild/berth/pkg/plan"
)

// FuzzRender: for any arguments, environment and label values, build flag,
// main package and GOPROXY, Render never panics, and what it renders
// parses with BuildKit's parser into exactly the instructions it should
// have (no value added one), whose values read back as the target's. Seeds
// are in testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	f.Fuzz(func(t *testing.T, arg1, arg2, envValue, labelValue, flag, main, proxy string) {
		ts := examples()[0].targets
		for i := range ts {
			tg := &ts[i]
			tg.Args = []string{arg1, arg2}
			tg.Env = []plan.EnvVar{{Name: "GOMAXPROCS", Value: "2"}, {Name: "VALUE", Value: envValue}}
			tg.Labels = append([]plan.Label{{Name: "org.example.value", Value: labelValue}}, tg.Labels[1:]...)
			tg.BuildFlags = []string{"-trimpath", flag, "-ldflags=" + ldflags}
			tg.Main = main
			for j, kv := range tg.BuildEnv {
				if strings.HasPrefix(kv, "GOPROXY=") {
					tg.BuildEnv[j] = "GOPROXY=" + proxy
				}
			}
		}
		dt, err := Render(ts, info)
		if err != nil {
			return
		}
		checkParse(t, ts, dt)
	})
}

// checkParse parses dt with BuildKit and compares it with ts.
func checkParse(t *testing.T, ts []plan.Target, dt []byte) {
	t.Helper()
	tg := ts[0]
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, dt)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("parser warnings: %v", res.Warnings)
	}
	if got, want := len(res.AST.Children), wantInstructions(tg); got != want {
		t.Fatalf("%d instructions, want %d:\n%s", got, want, dt)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("instructions: %v\n%s", err, dt)
	}
	final := stages[len(stages)-1].Commands
	lex := shell.NewLex('\\')
	none := shell.EnvsFromSlice(nil)

	var runs []*instructions.RunCommand
	for _, c := range stages[0].Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			runs = append(runs, r)
		}
	}
	build := runs[len(runs)-1]
	// BuildKit's lexer stands in for /bin/sh, which runs the command. It
	// drops the start of a word before ${VAR#pattern}, so that one
	// expansion is done here, as sh does it for linux/arm/v7.
	cmdline := strings.Replace(build.CmdLine[0], `GOARM="${TARGETVARIANT#v}"`, "GOARM=7", 1)
	words, err := lex.ProcessWords(cmdline, shell.EnvsFromSlice([]string{"TARGETOS=linux", "TARGETARCH=arm"}))
	if err != nil {
		t.Fatalf("build command %q: %v", build.CmdLine[0], err)
	}
	var want []string
	for _, kv := range tg.BuildEnv {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case goos, goarch, goarm:
		default:
			want = append(want, kv)
		}
	}
	want = append(want, "GOOS=linux", "GOARCH=arm", "GOARM=7")
	sort.Slice(want, func(i, j int) bool { return envName(want[i]) < envName(want[j]) })
	want = append(append(append(want, "go", "build"), tg.BuildFlags...), "-o", "/out/"+tg.BinaryName, tg.Main)
	if !reflect.DeepEqual(words, want) {
		t.Errorf("build command reads as %q, want %q", words, want)
	}

	var env, labels, cmd []string
	for _, c := range final {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				v, _, err := lex.ProcessWord(kv.Value, none)
				if err != nil {
					t.Fatalf("ENV %s: %v", kv.Key, err)
				}
				env = append(env, kv.Key+"="+v)
			}
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				v, _, err := lex.ProcessWord(kv.Value, none)
				if err != nil {
					t.Fatalf("LABEL %s: %v", kv.Key, err)
				}
				labels = append(labels, kv.Key+"="+v)
			}
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Errorf("CMD in shell form: %q", c.CmdLine)
			}
			cmd = c.CmdLine
		}
	}
	var wantEnv []string
	for _, e := range imageEnv(tg) {
		wantEnv = append(wantEnv, e.Name+"="+e.Value)
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("ENV reads as %q, want %q", env, wantEnv)
	}
	var wantLabels []string
	for _, l := range tg.Labels {
		wantLabels = append(wantLabels, l.Name+"="+l.Value)
	}
	if !reflect.DeepEqual(labels, wantLabels) {
		t.Errorf("LABEL reads as %q, want %q", labels, wantLabels)
	}
	if !reflect.DeepEqual(cmd, tg.Args) {
		t.Errorf("CMD reads as %q, want %q", cmd, tg.Args)
	}
}

// wantInstructions counts the instructions of tg's Dockerfile.
func wantInstructions(tg plan.Target) int {
	// FROM WORKDIR COPY RUN COPY ARG RUN; FROM COPY USER ENV ENTRYPOINT.
	n := 7 + 5
	if tg.Base == "static" {
		// RUN (base files); FROM COPY COPY COPY COPY; COPY (static).
		n += 1 + 5 + 1
	}
	n += len(tg.Ports)
	if len(tg.Labels) > 0 {
		n++
	}
	if len(tg.Args) > 0 {
		n++
	}
	return n
}

func envName(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}
