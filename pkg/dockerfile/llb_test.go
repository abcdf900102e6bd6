package dockerfile

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/berthbuild/berth/pkg/llbgen"
	"github.com/berthbuild/berth/pkg/plan"
)

// TestSameAsLLB: the image BuildKit makes of the Dockerfile has the config
// berth's LLB path gives the same target, and the static base holds the
// same accounts at the same paths.
func TestSameAsLLB(t *testing.T) {
	for _, c := range []struct{ name, got, want string }{
		{"ImagePath", ImagePath("api"), llbgen.ImagePath("api")},
		{"ZoneInfo", ZoneInfo, llbgen.ZoneinfoPath},
		{"CACerts", CACerts, llbgen.CACertsPath},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, llbgen has %s", c.name, c.got, c.want)
		}
	}
	for _, ex := range examples() {
		t.Run(ex.name, func(t *testing.T) {
			dt, err := Render(ex.targets, ex.info)
			if err != nil {
				t.Fatal(err)
			}
			g, err := llbgen.Generate(llbgen.Env{
				Plan:      &plan.Plan{Project: ex.info.Project, Version: ex.info.Version, Targets: ex.targets},
				Builder:   platforms.DefaultSpec(),
				Context:   llb.Scratch(),
				Toolchain: llb.Scratch(),
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, tg := range ex.targets {
				want := g.Targets[i].Image.Config.Config
				got := convert(t, dt, tg.Platform).Image.Config.ImageConfig
				if got.User != want.User || !reflect.DeepEqual(got.Entrypoint, want.Entrypoint) ||
					len(got.Cmd)+len(want.Cmd) > 0 && !reflect.DeepEqual(got.Cmd, want.Cmd) ||
					!reflect.DeepEqual(sorted(got.Env), sorted(want.Env)) ||
					!reflect.DeepEqual(got.Labels, want.Labels) ||
					len(got.ExposedPorts)+len(want.ExposedPorts) > 0 && !reflect.DeepEqual(got.ExposedPorts, want.ExposedPorts) {
					t.Errorf("%s: Dockerfile image config\n%+v\nLLB image config\n%+v", tg.Platform, got, want)
				}
			}
			if ex.targets[0].Base == "static" {
				tg := ex.targets[0]
				files := heredocs(t, dt)
				if got, want := files["/etc/passwd"], string(llbgen.Passwd(tg.User, tg.Group)); got != want {
					t.Errorf("/etc/passwd\n%s\nLLB has\n%s", got, want)
				}
				if got, want := files["/etc/group"], string(llbgen.Group(tg.Group)); got != want {
					t.Errorf("/etc/group\n%s\nLLB has\n%s", got, want)
				}
			}
		})
	}
}

// heredocs are the files the Dockerfile's COPY <<EOF instructions write.
func heredocs(t *testing.T, dt []byte) map[string]string {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, st := range stages {
		for _, c := range st.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok {
				for _, sc := range cp.SourceContents {
					files[cp.DestPath] = sc.Data
				}
			}
		}
	}
	return files
}
