package config

import (
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"

	"github.com/berthbuild/berth/pkg/diag"
)

// Positions of values in the user's files, and paths to them.

func pos(v cue.Value) diag.Pos { return tokPos(v.Pos()) }

func tokPos(p token.Pos) diag.Pos {
	if !p.IsValid() || p.Filename() == schemaFile {
		return diag.Pos{}
	}
	return diag.Pos{File: p.Filename(), Line: p.Line(), Col: p.Column()}
}

func rangeOf(v cue.Value) diag.Range {
	n := v.Source()
	if n == nil {
		p := pos(v)
		return diag.Range{Start: p, End: p}
	}
	return diag.Range{Start: tokPos(n.Pos()), End: tokPos(n.End())}
}

// lookupPos returns the position of the value at a dotted path inside v,
// or of its nearest ancestor that exists.
func lookupPos(v cue.Value, path string) diag.Pos {
	return nearestPos(path, func(p string) cue.Value { return v.LookupPath(parsePath(p)) })
}

// nearestPos returns the position of the value at a dotted path, or of
// its nearest ancestor that exists, each looked up with at.
func nearestPos(path string, at func(string) cue.Value) diag.Pos {
	for path != "" {
		x := at(path)
		if x.Exists() {
			if p := pos(x); p.IsValid() {
				return p
			}
		}
		i := lastDot(path)
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return diag.Pos{}
}

// parsePath reads a dotted error path: numbers are list indexes, quoted
// labels are unquoted.
func parsePath(path string) cue.Path {
	var sels []cue.Selector
	for path != "" {
		var part string
		if path[0] == '"' {
			end := 1
			for end < len(path) && path[end] != '"' {
				if path[end] == '\\' {
					end++
				}
				end++
			}
			part = path[:min(end+1, len(path))]
			path = strings.TrimPrefix(path[len(part):], ".")
			if u, err := strconv.Unquote(part); err == nil {
				sels = append(sels, cue.Str(u))
				continue
			}
		} else {
			part, path, _ = strings.Cut(path, ".")
		}
		if n, err := strconv.Atoi(part); err == nil {
			sels = append(sels, cue.Index(n))
		} else {
			sels = append(sels, cue.Str(part))
		}
	}
	return cue.MakePath(sels...)
}

// optional makes the string selectors of p match optional and required
// fields too.
func optional(p cue.Path) cue.Path {
	sels := p.Selectors()
	for i, s := range sels {
		if s.LabelType() == cue.StringLabel {
			sels[i] = s.Optional()
		}
	}
	return cue.MakePath(sels...)
}

// lastDot finds the last selector separator, skipping quoted labels.
func lastDot(path string) int {
	inq := false
	for i := len(path) - 1; i >= 0; i-- {
		switch path[i] {
		case '"':
			inq = !inq
		case '.':
			if !inq {
				return i
			}
		}
	}
	return -1
}
