package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/berthbuild/berth/pkg/diag"
)

// testDir is the directory in-memory projects are loaded as; it need not
// exist.
const testDir = "/cfg"

func newLoader(t testing.TB) *Loader {
	t.Helper()
	l, err := NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// loadTxtar loads the files of a txtar archive as the .cue files of
// testDir.
func loadTxtar(t *testing.T, l *Loader, archive string) (*Project, error) {
	t.Helper()
	a := txtar.Parse([]byte(archive))
	if len(a.Files) == 0 {
		t.Fatal("archive holds no files")
	}
	files := map[string][]byte{}
	for _, f := range a.Files {
		files[f.Name] = f.Data
	}
	return l.LoadSource(testDir, files)
}

func mustLoad(t *testing.T, l *Loader, archive string) *Project {
	t.Helper()
	p, err := loadTxtar(t, l, archive)
	if err != nil {
		var b strings.Builder
		diag.Print(&b, err, testDir)
		t.Fatalf("load:\n%s", b.String())
	}
	return p
}

func TestLoadFieldPositions(t *testing.T) {
	p := mustLoad(t, newLoader(t), `-- berth.cue --
package berth

project: "shop"
version: "1.0.0"
go: version: "1.26.8"

services: api: {
	main: "./cmd/api"
	limits: memory: "256Mi"
	env: {B: "3", C: "4"}
}
-- defaults.cue --
package berth

defaults: {
	platforms: ["linux/amd64", "linux/arm64"]
	base: "scratch"
	limits: {cpu: 1, memory: "128Mi"}
	env: {A: "1", B: "2"}
}
`)
	s := p.Service("api")
	if s == nil {
		t.Fatal("no service api")
	}
	for _, tc := range []struct {
		name  string
		got   func() (diag.Pos, bool)
		want  diag.Pos
		exact bool // the field must be recorded, not found by falling back
	}{
		{"project", field(p.Fields, "project"), at("berth.cue", 3, 1), true},
		{"version", field(p.Fields, "version"), at("berth.cue", 4, 1), true},
		{"go", field(p.Fields, "go"), at("berth.cue", 5, 1), true},
		{"go.version", field(p.Fields, "go.version"), at("berth.cue", 5, 5), true},
		{"service name", func() (diag.Pos, bool) { return s.Pos, true }, at("berth.cue", 7, 11), true},
		{"service range start", func() (diag.Pos, bool) { return s.Range.Start, true }, at("berth.cue", 7, 11), true},
		{"service range end", func() (diag.Pos, bool) { return s.Range.End, true }, at("berth.cue", 11, 2), true},
		{"main, the service's", field(s.Fields, "main"), at("berth.cue", 8, 2), true},
		{"limits, the service's struct", field(s.Fields, "limits"), at("berth.cue", 9, 2), true},
		{"limits.memory, the service's over defaults", field(s.Fields, "limits.memory"), at("berth.cue", 9, 10), true},
		{"limits.cpu, inherited: in defaults", field(s.Fields, "limits.cpu"), at("defaults.cue", 6, 11), true},
		{"platforms, inherited: in defaults", field(s.Fields, "platforms"), at("defaults.cue", 4, 2), true},
		{"base, inherited: in defaults", field(s.Fields, "base"), at("defaults.cue", 5, 2), true},
		{"env.A, inherited: in defaults", field(s.Fields, "env.A"), at("defaults.cue", 7, 8), true},
		{"env.B, the service's over defaults", field(s.Fields, "env.B"), at("berth.cue", 10, 8), true},
		{"FieldPos of a service-only env var falls back to env", fieldPos(s, "env.C"), at("berth.cue", 10, 2), false},
		{"FieldPos of an unset field falls back to the service", fieldPos(s, "ports"), at("berth.cue", 7, 11), false},
		{"FieldPos of an inherited field", fieldPos(s, "limits.cpu"), at("defaults.cue", 6, 11), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.got()
			if !ok && tc.exact {
				t.Fatalf("not recorded, want %s", tc.want)
			}
			if got != tc.want {
				t.Errorf("position %s, want %s", got, tc.want)
			}
		})
	}
	for k, pos := range s.Fields {
		if !pos.IsValid() || pos.Line < 1 || pos.Col < 1 {
			t.Errorf("Fields[%q] = %v, not a position", k, pos)
		}
	}
	if got := string(p.Sources[filepath.Join(testDir, "defaults.cue")]); !strings.HasPrefix(got, "package berth\n\ndefaults:") {
		t.Errorf("Sources does not hold defaults.cue: %q", got)
	}
}

func field(m map[string]diag.Pos, k string) func() (diag.Pos, bool) {
	return func() (diag.Pos, bool) {
		p, ok := m[k]
		return p, ok
	}
}

func fieldPos(s *Service, path string) func() (diag.Pos, bool) {
	return func() (diag.Pos, bool) { return s.FieldPos(path), true }
}
