package config

import (
	"testing"

	"cuelang.org/go/cue"
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
