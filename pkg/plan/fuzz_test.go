package plan

import (
	"bytes"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/config"
)

// FuzzPlan plans arbitrary (already validated-looking) services: the
// planner never panics, is deterministic, and every value it copies from
// the config reaches the target unchanged.
func FuzzPlan(f *testing.F) {
	f.Add("api", "./cmd/api", "linux/arm/v7", "--listen=:8080", "LOG", "info", 1.5, int64(256<<20), 65532, "example.com/x.Version")
	f.Add("cli", ".", "windows/amd64", "", "", "", 0.0, int64(0), 1000, "")
	f.Add("w", "./w", "darwin/arm64", "a b", "K", "v=w", 0.25, int64(1<<20), 0, "v.V")
	f.Fuzz(func(t *testing.T, name, main, platform, arg, envName, envValue string, cpu float64, mem int64, uid int, stamp string) {
		if cpu < 0 || cpu > 1e6 || mem < 0 || strings.Count(platform, "/") > 2 {
			return // the schema refuses these before planning
		}
		s := &config.Service{
			Name: name, Main: main, Platforms: []config.Platform{config.ParsePlatform(platform)},
			Base: "static", User: uid, Group: uid, Args: []string{arg},
			Limits:  config.Limits{CPU: cpu, Memory: mem},
			Outputs: config.Outputs{Image: true, Binary: true, Systemd: true, Dockerfile: true},
		}
		if envName != "" {
			s.Env = []config.EnvVar{{Name: envName, Value: envValue}}
		}
		p := &config.Project{Name: "p", Services: []*config.Service{s}, Go: config.Go{Stamp: config.Stamp{Version: stamp}}}
		in := Inputs{GoVersion: "1.26.8", SourceDateEpoch: 1700000000}
		a, err := New(p, in)
		if err != nil {
			return
		}
		b, _ := New(p, in)
		ja, err := JSON(a)
		if err != nil {
			t.Fatal(err)
		}
		jb, _ := JSON(b)
		if !bytes.Equal(ja, jb) {
			t.Fatal("planning twice gave different plans")
		}
		if len(a.Targets) != 1 {
			t.Fatalf("%d targets", len(a.Targets))
		}
		tg := a.Targets[0]
		if tg.Args[0] != arg || tg.Main != main || tg.User != uid {
			t.Errorf("values changed on the way: %+v", tg)
		}
		if tg.GOOS != "linux" && (tg.Outputs.Image || tg.Outputs.Systemd) {
			t.Error("image or unit output for a non-linux target")
		}
		if mem > 0 && envName != "GOMEMLIMIT" {
			lim := tg.GOMEMLIMIT
			if lim == "" || config.ParseBytes(lim) >= mem {
				t.Errorf("GOMEMLIMIT %q not below memory %d", lim, mem)
			}
		}
	})
}
