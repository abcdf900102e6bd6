package diag

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// Pos is a position in a configuration file. Line and Col start at 1; a
// zero Pos means "no position".
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// IsValid reports whether p names a file.
func (p Pos) IsValid() bool { return p.File != "" }

// String formats p as file:line:col.
func (p Pos) String() string {
	if !p.IsValid() {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Rel returns p with its file name relative to dir, written "./name" when
// it is below dir, as CUE prints positions.
func (p Pos) Rel(dir string) Pos {
	if !p.IsValid() || dir == "" || !filepath.IsAbs(p.File) {
		return p
	}
	r, err := filepath.Rel(dir, p.File)
	if err != nil {
		return p
	}
	if !strings.HasPrefix(r, "..") {
		r = "." + string(filepath.Separator) + r
	}
	p.File = r
	return p
}

// Less orders positions by file, line and column.
func (p Pos) Less(q Pos) bool {
	if p.File != q.File {
		return p.File < q.File
	}
	if p.Line != q.Line {
		return p.Line < q.Line
	}
	return p.Col < q.Col
}

// Range is a span of a configuration file, used to point a build step back
// at the declaration it came from.
type Range struct {
	Start Pos `json:"start"`
	End   Pos `json:"end"`
}

// Error is one mistake: the configuration path it is about, a message in a
// user's words, and the positions that show it (first is the main one).
type Error struct {
	Path string
	Msg  string
	Pos  []Pos
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if len(e.Pos) > 0 {
		b.WriteString(" (")
		b.WriteString(e.Pos[0].String())
		b.WriteString(")")
	}
	return b.String()
}

// Errorf returns a positioned error.
func Errorf(pos Pos, path, format string, args ...any) *Error {
	e := &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
	if pos.IsValid() {
		e.Pos = []Pos{pos}
	}
	return e
}

// List collects errors. The zero value is ready to use.
type List struct {
	m *multierror.Error
}

// Add appends errors; a nil error is ignored, and a List or multierror is
// flattened.
func (l *List) Add(errs ...error) {
	for _, err := range errs {
		if err == nil {
			continue
		}
		var other *List
		if errors.As(err, &other) && other != l {
			if other.m != nil {
				l.m = multierror.Append(l.m, other.m.Errors...)
			}
			continue
		}
		l.m = multierror.Append(l.m, err)
	}
}

// Len returns the number of errors collected.
func (l *List) Len() int {
	if l == nil || l.m == nil {
		return 0
	}
	return len(l.m.Errors)
}

// Errors returns the collected errors, sorted by position then path and
// message, with exact duplicates removed.
func (l *List) Errors() []error {
	if l.Len() == 0 {
		return nil
	}
	errs := append([]error(nil), l.m.Errors...)
	sort.SliceStable(errs, func(i, j int) bool { return less(errs[i], errs[j]) })
	out := errs[:0]
	seen := map[string]bool{}
	for _, e := range errs {
		k := key(e)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	return out
}

// Err returns nil when the list is empty, else the list itself.
func (l *List) Err() error {
	if l.Len() == 0 {
		return nil
	}
	return l
}

func (l *List) Error() string {
	errs := l.Errors()
	switch len(errs) {
	case 0:
		return "no errors"
	case 1:
		return errs[0].Error()
	}
	return fmt.Sprintf("%s (and %d more errors)", errs[0].Error(), len(errs)-1)
}

// Unwrap lets errors.Is and errors.As see each collected error.
func (l *List) Unwrap() []error { return l.Errors() }

func first(e error) (Pos, string) {
	var d *Error
	if errors.As(e, &d) {
		var p Pos
		if len(d.Pos) > 0 {
			p = d.Pos[0]
		}
		return p, d.Path + "\x00" + d.Msg
	}
	return Pos{}, "\x00" + e.Error()
}

func less(a, b error) bool {
	pa, ka := first(a)
	pb, kb := first(b)
	if pa != pb {
		// Errors without a position come last.
		if !pa.IsValid() || !pb.IsValid() {
			return pa.IsValid()
		}
		return pa.Less(pb)
	}
	return ka < kb
}

func key(e error) string {
	var d *Error
	if errors.As(e, &d) {
		var b strings.Builder
		b.WriteString(d.Path + "\x00" + d.Msg)
		for _, p := range d.Pos {
			b.WriteString("\x00" + p.String())
		}
		return b.String()
	}
	return e.Error()
}

// Print writes err for a user: each error as "path: message" and then its
// positions, one per line, indented, relative to cwd. A List prints every
// error it holds, in order.
func Print(w io.Writer, err error, cwd string) {
	if err == nil {
		return
	}
	var errs []error
	var l *List
	if errors.As(err, &l) {
		errs = l.Errors()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var d *Error
		if !errors.As(e, &d) {
			fmt.Fprintf(w, "%v\n", e)
			continue
		}
		if d.Path != "" {
			fmt.Fprintf(w, "%s: %s\n", d.Path, d.Msg)
		} else {
			fmt.Fprintf(w, "%s\n", d.Msg)
		}
		for _, p := range d.Pos {
			fmt.Fprintf(w, "    %s\n", p.Rel(cwd))
		}
	}
}
