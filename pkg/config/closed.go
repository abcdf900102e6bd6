package config

import (
	"sort"

	"cuelang.org/go/cue"

	"github.com/berthbuild/berth/pkg/diag"
)

// CUE reports an unknown field, or a missing required one, only for a
// struct that has no other error, so one run would hide them behind a type
// error. These walks ask the schema itself (Allows, required constraints)
// and report them all; CUE's own report of the same path is then dropped.

// closedErrs reports every field of user that schema does not allow, and
// recurses into fields whose schema is a struct. skip names fields whose
// contents are checked elsewhere.
func closedErrs(user, schema cue.Value, prefix string, skip map[string]bool, out map[string]*diag.Error) {
	it, err := user.Fields()
	if err != nil {
		return
	}
	for it.Next() {
		sel := it.Selector()
		path := join(prefix, sel.String())
		if !schema.Allows(sel) {
			msg := "field not allowed"
			if s := suggest(sel.Unquoted(), schema); s != "" {
				msg += "; did you mean " + s + "?"
			}
			out[path] = &diag.Error{Path: path, Msg: msg, Pos: nonEmpty(pos(it.Value()))}
			continue
		}
		if skip[path] || it.Value().IncompleteKind() != cue.StructKind {
			continue
		}
		sub := schema.LookupPath(cue.MakePath(sel.Optional()))
		if sub.Exists() && sub.IncompleteKind()&cue.StructKind != 0 {
			closedErrs(it.Value(), sub, path, skip, out)
		}
	}
}

// required lists the required fields of schema.
func required(schema cue.Value) []cue.Selector {
	it, err := schema.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var sels []cue.Selector
	for it.Next() {
		if sel := it.Selector(); sel.ConstraintType() == cue.RequiredConstraint {
			sels = append(sels, sel)
		}
	}
	return sels
}

// requiredErrs reports the fields of req that v lacks, at at.
func requiredErrs(v cue.Value, req []cue.Selector, prefix string, at diag.Pos, out map[string]*diag.Error) {
	for _, sel := range req {
		if v.LookupPath(cue.MakePath(sel.Required())).Exists() {
			continue
		}
		path := join(prefix, sel.Unquoted())
		out[path] = &diag.Error{Path: path, Msg: "field is required but not present", Pos: nonEmpty(at)}
	}
}

func nonEmpty(p diag.Pos) []diag.Pos {
	if p.IsValid() {
		return []diag.Pos{p}
	}
	return nil
}

func join(prefix, s string) string {
	if prefix == "" {
		return s
	}
	if s == "" {
		return prefix
	}
	return prefix + "." + s
}

// suggest returns the schema field closest to name, if it is a likely typo.
func suggest(name string, schema cue.Value) string {
	it, err := schema.Fields(cue.Optional(true))
	if err != nil {
		return ""
	}
	var cands []string
	for it.Next() {
		cands = append(cands, it.Selector().Unquoted())
	}
	sort.Strings(cands)
	best, bestD := "", 3
	for _, c := range cands {
		if d := distance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance: a swap of two
// neighbours ("platfroms") counts as one edit.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
