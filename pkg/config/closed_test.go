package config

import (
	"testing"

	"cuelang.org/go/cue"

	"github.com/berthbuild/berth/pkg/diag"
)

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		want int
	}{
		{"equal", "limits", "limits", 0},
		{"both empty", "", "", 0},
		{"from empty", "", "abc", 3},
		{"to empty", "abc", "", 3},
		{"one substitution", "limats", "limits", 1},
		{"one insertion", "limit", "limits", 1},
		{"one deletion", "limitss", "limits", 1},
		{"neighbours swapped count once", "platfroms", "platforms", 1},
		{"swap at the start", "rgoup", "group", 1},
		{"classic", "kitten", "sitting", 3},
		{"runes, not bytes", "héllo", "hello", 1},
		{"restricted: no edit of a swapped pair", "ca", "abc", 3},
		{"case matters", "Main", "main", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := distance(tc.a, tc.b); got != tc.want {
				t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := distance(tc.b, tc.a); got != tc.want {
				t.Errorf("distance(%q, %q) = %d, want %d (not symmetric)", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	l := newLoader(t)
	limits := l.fields.LookupPath(cue.MakePath(cue.Str("limits").Optional()))
	if !limits.Exists() {
		t.Fatal("no limits in #Fields")
	}
	for _, tc := range []struct {
		name   string
		field  string
		schema cue.Value
		want   string
	}{
		{"swapped letters", "platfroms", l.fields, "platforms"},
		{"missing letter", "limit", l.fields, "limits"},
		{"extra letter", "mainn", l.fields, "main"},
		{"two edits", "descrption", l.fields, "description"},
		{"capitalised", "Main", l.fields, "main"},
		{"top level", "projet", l.top, "project"},
		{"required field of top", "servics", l.top, "services"},
		{"inside limits", "memroy", limits, "memory"},
		{"inside limits, decimal unit field", "nofiles", limits, "nofile"},
		{"too far", "memory", l.fields, ""},
		{"nothing close", "xyz", l.fields, ""},
		{"three edits is too many", "usrrrr", l.fields, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := suggest(tc.field, tc.schema); got != tc.want {
				t.Errorf("suggest(%q) = %q, want %q", tc.field, got, tc.want)
			}
		})
	}
}

// serviceCheck inspects one loaded service; it returns what is wrong, or "".
type serviceCheck func(s *Service) string

// What the walk of a service records answers as LookupPath does, for the
// paths it answers at all: regular, optional and required fields, fields
// that hold errors, structs with a default, paths below missing fields.
func TestOwnFieldsMatchLookup(t *testing.T) {
	l := newLoader(t)
	for _, tc := range []struct {
		src     string
		answers bool // whether the walk answers any of the paths
	}{
		{`main: "./a", env: {A: "1", "b-c": "2", "d.e": "3"}, limits: {cpu: 1, memory?: "1Gi"}`, true},
		{`main!: string, cgo?: true, env: {X!: string}, limits: {cpu: number}`, true},
		{`main: "./a", outputs: *{image: true} | {image: false}`, true},
		{`*{main: "./a", env: {A: "1"}} | {main: "./b"}`, false}, // Fields walks the default
		{`main: "./a", limits: 5, args: ["x"], systemd: {Service: {Nice: "1"}}`, true},
		{`main: "./a", env: 1 & 2`, true},
	} {
		src := tc.src
		v := l.ctx.CompileString("s: {" + src + "}").LookupPath(cue.ParsePath("s"))
		own := newOwnFields("services.s", map[string]*schemaField{})
		walkClosed(v, l.fields, "services.s", nil, map[string]*diag.Error{}, own)
		answered := 0
		for _, path := range []string{
			"main", "cgo", "env", "env.A", `env."b-c"`, `env."d.e"`, "env.X", "env.Z", "env.0",
			"limits", "limits.cpu", "limits.memory", "limits.cpu.x", "outputs", "outputs.image",
			"args", "args.0", "systemd.Service", "systemd.Service.Nice", "systemd.Unit.After",
			"runtime", "runtime.gomaxprocs", "runtime.gomaxprocs.x",
		} {
			got, ok := own.get(path)
			if !ok {
				continue
			}
			answered++
			want := v.LookupPath(parsePath(path))
			if got.Exists() != want.Exists() || (want.Exists() && pos(got) != pos(want)) {
				t.Errorf("%s: %s: walk says exists %v at %v, LookupPath %v at %v", src, path, got.Exists(), pos(got), want.Exists(), pos(want))
			}
		}
		if (answered > 0) != tc.answers {
			t.Errorf("%s: the walk answered %d paths", src, answered)
		}
	}
}
