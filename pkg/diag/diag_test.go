package diag_test

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/diag"
)

// at returns a position in dir/file.
func at(dir, file string, line, col int) diag.Pos {
	return diag.Pos{File: filepath.Join(dir, file), Line: line, Col: col}
}

func errAt(path, msg string, ps ...diag.Pos) *diag.Error {
	return &diag.Error{Path: path, Msg: msg, Pos: ps}
}

// summary is an error as one comparable line: path, message, positions.
func summary(e error) string {
	var d *diag.Error
	if !errors.As(e, &d) {
		return "plain: " + e.Error()
	}
	s := d.Path + ": " + d.Msg
	for _, p := range d.Pos {
		s += " @" + filepath.Base(p.File) + fmt.Sprintf(":%d:%d", p.Line, p.Col)
	}
	return s
}

func TestListErrors(t *testing.T) {
	const dir = "/proj"
	for _, tc := range []struct {
		name string
		add  []error
		want []string
	}{
		{
			name: "empty",
			want: nil,
		},
		{
			name: "sorted by file, then line and column as numbers",
			add: []error{
				errAt("b", "m", at(dir, "b.cue", 1, 1)),
				errAt("a10", "m", at(dir, "a.cue", 10, 1)),
				errAt("a2c5", "m", at(dir, "a.cue", 2, 5)),
				errAt("a2c3", "m", at(dir, "a.cue", 2, 3)),
				errAt("a9", "m", at(dir, "a.cue", 9, 40)),
			},
			want: []string{"a2c3: m @a.cue:2:3", "a2c5: m @a.cue:2:5", "a9: m @a.cue:9:40", "a10: m @a.cue:10:1", "b: m @b.cue:1:1"},
		},
		{
			name: "same position ordered by path then message",
			add: []error{
				errAt("z", "a", at(dir, "a.cue", 1, 1)),
				errAt("y", "b", at(dir, "a.cue", 1, 1)),
				errAt("y", "a", at(dir, "a.cue", 1, 1)),
			},
			want: []string{"y: a @a.cue:1:1", "y: b @a.cue:1:1", "z: a @a.cue:1:1"},
		},
		{
			name: "only the first position orders",
			add: []error{
				errAt("late", "m", at(dir, "a.cue", 5, 1), at(dir, "a.cue", 1, 1)),
				errAt("early", "m", at(dir, "a.cue", 2, 1), at(dir, "a.cue", 9, 1)),
			},
			want: []string{"early: m @a.cue:2:1 @a.cue:9:1", "late: m @a.cue:5:1 @a.cue:1:1"},
		},
		{
			name: "exact duplicates dropped, same message elsewhere kept",
			add: []error{
				errAt("x", "bad", at(dir, "a.cue", 3, 1)),
				errAt("x", "bad", at(dir, "a.cue", 3, 1)),
				errAt("x", "bad", at(dir, "a.cue", 4, 1)),
				errAt("x", "bad", at(dir, "a.cue", 3, 1), at(dir, "b.cue", 1, 1)),
				errAt("x", "worse", at(dir, "a.cue", 3, 1)),
				errors.New("plain"),
				errors.New("plain"),
			},
			want: []string{
				"x: bad @a.cue:3:1",
				"x: bad @a.cue:3:1 @b.cue:1:1",
				"x: worse @a.cue:3:1",
				"x: bad @a.cue:4:1",
				"plain: plain",
			},
		},
		{
			name: "errors without a position last, by path and message",
			add: []error{
				errors.New("zz plain"),
				errAt("b", "no position"),
				errAt("z", "late", at(dir, "z.cue", 99, 1)),
				errAt("a", "no position"),
				errAt("a", "early", at(dir, "a.cue", 1, 1)),
			},
			want: []string{
				"a: early @a.cue:1:1",
				"z: late @z.cue:99:1",
				"plain: zz plain",
				"a: no position",
				"b: no position",
			},
		},
		{
			name: "nil ignored, lists flattened",
			add: func() []error {
				var inner diag.List
				inner.Add(errAt("b", "m", at(dir, "a.cue", 2, 1)), nil)
				var empty diag.List
				return []error{nil, &inner, &empty, errAt("a", "m", at(dir, "a.cue", 1, 1))}
			}(),
			want: []string{"a: m @a.cue:1:1", "b: m @a.cue:2:1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l diag.List
			l.Add(tc.add...)
			var got []string
			for _, e := range l.Errors() {
				got = append(got, summary(e))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if l.Len() < len(tc.want) {
				t.Errorf("Len %d, fewer than the %d distinct errors", l.Len(), len(tc.want))
			}
			if (l.Err() == nil) != (len(tc.want) == 0) {
				t.Errorf("Err() = %v with %d errors", l.Err(), len(tc.want))
			}
		})
	}
}

func TestListError(t *testing.T) {
	p := diag.Pos{File: "/p/berth.cue", Line: 3, Col: 7}
	for _, tc := range []struct {
		name string
		add  []error
		want string
	}{
		{"none", nil, "no errors"},
		{"one", []error{errAt("services.api.main", "missing", p)}, "services.api.main: missing (/p/berth.cue:3:7)"},
		{"first of several, in sorted order", []error{
			errors.New("plain"),
			errAt("b", "second", diag.Pos{File: "/p/berth.cue", Line: 9, Col: 1}),
			errAt("a", "first", p),
		}, "a: first (/p/berth.cue:3:7) (and 2 more errors)"},
		{"duplicates not counted", []error{errAt("a", "m", p), errAt("a", "m", p), errAt("b", "m", p)}, "a: m (/p/berth.cue:3:7) (and 1 more errors)"},
		{"no path, no position", []error{errAt("", "just a message")}, "just a message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l diag.List
			l.Add(tc.add...)
			if got := l.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

var errSentinel = errors.New("sentinel")

func TestListUnwrap(t *testing.T) {
	var l diag.List
	l.Add(
		errAt("b", "second", diag.Pos{File: "/p/a.cue", Line: 2, Col: 1}),
		fmt.Errorf("reading: %w", errSentinel),
		errAt("a", "first", diag.Pos{File: "/p/a.cue", Line: 1, Col: 1}),
		&fs.PathError{Op: "open", Path: "/p/x", Err: fs.ErrNotExist},
	)
	wrapped := fmt.Errorf("loading: %w", l.Err())

	for _, tc := range []struct {
		name string
		err  error
	}{
		{"list", l.Err()},
		{"wrapped list", wrapped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d *diag.Error
			if !errors.As(tc.err, &d) {
				t.Fatal("errors.As found no *diag.Error")
			}
			if d.Path != "a" {
				t.Errorf("errors.As found %q, want the first in sorted order, a", d.Path)
			}
			if !errors.Is(tc.err, errSentinel) {
				t.Error("errors.Is does not see a wrapped sentinel in the list")
			}
			if !errors.Is(tc.err, fs.ErrNotExist) {
				t.Error("errors.Is does not see fs.ErrNotExist in the list")
			}
			var pe *fs.PathError
			if !errors.As(tc.err, &pe) || pe.Path != "/p/x" {
				t.Errorf("errors.As *fs.PathError = %v", pe)
			}
			var back *diag.List
			if !errors.As(tc.err, &back) || back.Len() != 4 {
				t.Errorf("errors.As *diag.List = %v", back)
			}
			if errors.Is(tc.err, fs.ErrPermission) {
				t.Error("errors.Is matched an error the list does not hold")
			}
		})
	}
}

func TestPrint(t *testing.T) {
	cwd := t.TempDir()
	cfg := filepath.Join(cwd, "cfg")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil prints nothing", nil, ""},
		{
			"one error, position relative to cwd",
			errAt("services.api.main", "field is required but not present", at(cwd, "berth.cue", 5, 3)),
			"services.api.main: field is required but not present\n    ./berth.cue:5:3\n",
		},
		{
			"several positions, one per line, subdirectory and parent",
			errAt("services.api.limits.cpu", "conflicting values", at(cfg, "berth.cue", 7, 9), at(cwd, "rules.cue", 2, 1), at(filepath.Dir(cwd), "up.cue", 1, 2)),
			"services.api.limits.cpu: conflicting values\n    ./cfg/berth.cue:7:9\n    ./rules.cue:2:1\n    ../up.cue:1:2\n",
		},
		{
			"no path",
			errAt("", "the .cue files must form one package", at(cwd, "a.cue", 1, 1)),
			"the .cue files must form one package\n    ./a.cue:1:1\n",
		},
		{
			"relative positions as they are",
			errAt("x", "m", diag.Pos{File: "rel/berth.cue", Line: 1, Col: 2}),
			"x: m\n    rel/berth.cue:1:2\n",
		},
		{
			"plain error",
			errors.New("no .cue files in /x"),
			"no .cue files in /x\n",
		},
		{
			"list: every error sorted, positionless last",
			func() error {
				var l diag.List
				l.Add(
					errAt("z", "no position"),
					errors.New("plain"),
					errAt("b", "second", at(cwd, "berth.cue", 9, 1)),
					errAt("a", "first", at(cwd, "berth.cue", 2, 4)),
					errAt("a", "first", at(cwd, "berth.cue", 2, 4)),
				)
				return fmt.Errorf("load: %w", l.Err())
			}(),
			"a: first\n    ./berth.cue:2:4\nb: second\n    ./berth.cue:9:1\nplain\nz: no position\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			diag.Print(&b, tc.err, cwd)
			if b.String() != tc.want {
				t.Errorf("printed:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestErrorf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pos     diag.Pos
		wantPos int
		want    string
	}{
		{"positioned", diag.Pos{File: "/p/a.cue", Line: 1, Col: 2}, 1, "go.version: no Go version 1 (/p/a.cue:1:2)"},
		{"zero position is left out", diag.Pos{}, 0, "go.version: no Go version 1"},
		{"a position without a file is left out", diag.Pos{Line: 3, Col: 4}, 0, "go.version: no Go version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := diag.Errorf(tc.pos, "go.version", "no Go version %d", 1)
			if len(e.Pos) != tc.wantPos || e.Error() != tc.want {
				t.Errorf("Errorf = %q with %d positions, want %q with %d", e.Error(), len(e.Pos), tc.want, tc.wantPos)
			}
		})
	}
}

func TestPos(t *testing.T) {
	for _, tc := range []struct {
		name string
		pos  diag.Pos
		dir  string
		rel  string
	}{
		{"below dir", diag.Pos{File: "/p/berth.cue", Line: 1, Col: 1}, "/p", "./berth.cue:1:1"},
		{"deeper", diag.Pos{File: "/p/sub/x.cue", Line: 2, Col: 3}, "/p", "./sub/x.cue:2:3"},
		{"outside dir", diag.Pos{File: "/q/x.cue", Line: 2, Col: 3}, "/p", "../q/x.cue:2:3"},
		{"no dir", diag.Pos{File: "/q/x.cue", Line: 2, Col: 3}, "", "/q/x.cue:2:3"},
		{"relative file unchanged", diag.Pos{File: "x.cue", Line: 2, Col: 3}, "/p", "x.cue:2:3"},
		{"no position", diag.Pos{}, "/p", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.pos.Rel(tc.dir).String(); got != tc.rel {
				t.Errorf("Rel(%q) = %s, want %s", tc.dir, got, tc.rel)
			}
		})
	}
	a, b := diag.Pos{File: "a", Line: 2, Col: 9}, diag.Pos{File: "a", Line: 10, Col: 1}
	if !a.Less(b) || b.Less(a) || a.Less(a) {
		t.Errorf("Less: %v < %v = %v, reverse %v", a, b, a.Less(b), b.Less(a))
	}
}
