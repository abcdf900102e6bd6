package dockerfile

import (
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/berthbuild/berth/pkg/plan"
)

func TestRenderGolden(t *testing.T) {
	for _, ex := range examples() {
		t.Run(ex.name, func(t *testing.T) {
			got, err := Render(ex.targets, ex.info)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, ex.name+".Dockerfile", got)
			again, err := Render(ex.targets, ex.info)
			if err != nil || string(again) != string(got) {
				t.Fatalf("second render differs (err %v)", err)
			}
		})
	}
}

func TestDockerignore(t *testing.T) {
	got, err := Dockerignore(info)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "Dockerfile.dockerignore", got)

	patterns, err := ignorefile.ReadAll(strings.NewReader(string(got)))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		".git": true, ".git/config": true, "dist": true, "dist/bin/api/linux_amd64/api": true,
		"go.mod": false, "cmd/api/main.go": false, "cmd/dist/main.go": false, "distance.go": false,
	} {
		if got, err := pm.MatchesOrParentMatches(path); err != nil || got != want {
			t.Errorf("%s ignored: %v (err %v), want %v", path, got, err, want)
		}
	}

	for _, tc := range []struct {
		out     string
		ok      bool
		pattern string
	}{
		{"", true, ""},
		{".", true, ""},
		{"../dist", true, ""},
		{"out/dist", true, "/out/dist"},
		{"#dist", false, ""},
		{"!dist", false, ""},
		{"di*st", false, ""},
		{"/abs", false, ""},
		{"a/../b", false, ""},
		{"dist\n!go.mod", false, ""},
	} {
		got, err := Dockerignore(RenderInfo{OutDir: tc.out})
		if (err == nil) != tc.ok {
			t.Errorf("Dockerignore(OutDir %q) error %v, want ok %v", tc.out, err, tc.ok)
			continue
		}
		if tc.pattern != "" && !strings.Contains(string(got), "\n"+tc.pattern+"\n") {
			t.Errorf("Dockerignore(OutDir %q) =\n%s\nwant a line %s", tc.out, got, tc.pattern)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, shell, word string }{
		{"info", "info", "info"},
		{"", "''", `""`},
		{"two words", "'two words'", `"two words"`},
		{"it's", `'it'\''s'`, `"it's"`},
		{`say "hi"`, `'say "hi"'`, `"say \"hi\""`},
		{"$HOME", "'$HOME'", `"\$HOME"`},
		{`a\b`, `'a\b'`, `"a\\b"`},
		{"<<EOF", "'<<EOF'", `"<<EOF"`},
		{"#x", "'#x'", `"#x"`},
		{"https://proxy.golang.org,direct", "https://proxy.golang.org,direct", "https://proxy.golang.org,direct"},
	} {
		if got := shellQuote(tc.in); got != tc.shell {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.shell)
		}
		if got := word(tc.in); got != tc.word {
			t.Errorf("word(%q) = %s, want %s", tc.in, got, tc.word)
		}
	}
}

func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		l     plan.Limits
		ports []string
		want  string
	}{
		{"api", plan.Limits{CPU: 1.5, Memory: 268435456, NoFile: 65536, Tasks: 512}, []string{"8080/tcp"},
			"--cpus=1.5 --memory=256m --ulimit nofile=65536:65536 --pids-limit=512 -p 8080:8080/tcp"},
		{"gibibytes and udp", plan.Limits{CPU: 2, Memory: 2 << 30}, []string{"443/tcp", "8443/udp"},
			"--cpus=2 --memory=2g -p 443:443/tcp -p 8443:8443/udp"},
		{"kibibytes", plan.Limits{Memory: 1536 << 10}, nil, "--memory=1536k"},
		{"bytes", plan.Limits{Memory: 1000}, nil, "--memory=1000b"},
		{"none", plan.Limits{}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(runFlags(tc.l, tc.ports), " "); got != tc.want {
				t.Errorf("runFlags = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	api := examples()[0].targets
	for _, tc := range []struct {
		name   string
		change func([]plan.Target, *RenderInfo) []plan.Target
		want   string
	}{
		{"no targets", func([]plan.Target, *RenderInfo) []plan.Target { return nil }, "no targets"},
		{"windows", func(ts []plan.Target, _ *RenderInfo) []plan.Target { ts[1].GOOS = "windows"; return ts }, "not a linux"},
		{"platform twice", func(ts []plan.Target, _ *RenderInfo) []plan.Target { return append(ts, ts[0]) }, "twice"},
		{"two services", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			return append(ts[:1], examples()[1].targets[1])
		}, "differs"},
		{"different arguments", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			ts[2].Args = []string{"--other"}
			return ts
		}, "differs"},
		{"different build env", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			ts[1].BuildEnv = append([]string{"CGO_ENABLED=1"}, ts[1].BuildEnv[1:]...)
			return ts
		}, "one environment"},
		{"newline in argument", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Args = []string{"a\nRUN rm -rf /"}
			}
			return ts
		}, "control character"},
		{"newline in env", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Env = envs("A", "x\nUSER 0")
			}
			return ts
		}, "control character"},
		{"newline in label", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Labels[0].Value = "x\r"
			}
			return ts
		}, "control character"},
		{"invalid UTF-8", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Description = "\xff"
			}
			return ts
		}, "UTF-8"},
		{"unpinned base", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Base = "alpine:latest"
			}
			return ts
		}, "pinned"},
		{"builder with a variable", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Builder = "golang:$TAG"
			}
			return ts
		}, "image reference"},
		{"bad port", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Ports = []string{"80/sctp"}
			}
			return ts
		}, "port"},
		{"bad env name", func(ts []plan.Target, _ *RenderInfo) []plan.Target {
			for i := range ts {
				ts[i].Env = envs("A=B", "x")
			}
			return ts
		}, "name"},
		{"bad go version", func(ts []plan.Target, p *RenderInfo) []plan.Target { p.GoVersion = "1.26 AS x"; return ts }, "go version"},
		{"newline in project", func(ts []plan.Target, p *RenderInfo) []plan.Target { p.Project = "a\nRUN x"; return ts }, "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := append([]plan.Target{}, api...)
			for i := range ts {
				ts[i].Labels = append([]plan.Label{}, ts[i].Labels...)
			}
			p := info
			ts = tc.change(ts, &p)
			_, err := Render(ts, p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
