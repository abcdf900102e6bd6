package config

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/berthbuild/berth/pkg/diag"
)

// Merging defaults into services, and checking each service.

// candidate is a value a service may inherit: from defaults (src 0) or
// the built-in defaults (src 1), at a path inside the service.
type candidate struct {
	field string   // top-level service field
	index int      // its index in serviceFields
	key   string   // dotted path ("limits.cpu")
	path  cue.Path // the same, as a path
	val   cue.Value
	src   int
	// scalar candidates are taken whole; the others (a struct's fields)
	// only when the service does not set them.
	scalar bool
	// plain: path holds only regular selectors, so that a lookup of it
	// finds what a lookup of key finds.
	plain bool
	// sub is the selector below field, for a struct's field.
	sub cue.Selector
}

// inheritance lists, once per project, what services can inherit, in
// merge order: the lookups into defaults are the same for every service.
func (l *Loader) inheritance(defaults cue.Value) (cands []candidate) {
	srcs := [2]cue.Value{defaults, l.builtin}
	for fi, f := range serviceFields {
		for si, src := range srcs {
			dv := src.LookupPath(f.path)
			if !dv.Exists() {
				continue
			}
			if !f.struct_ {
				cands = append(cands, candidate{field: f.name, index: fi, key: f.name, path: f.path, val: dv, src: si, scalar: true})
				continue
			}
			sub, err := dv.Fields()
			if err != nil {
				continue
			}
			for sub.Next() {
				k := f.name + "." + sub.Selector().String()
				if f.name == "systemd" {
					// Sections merge directive by directive.
					ds, err := sub.Value().Fields()
					if err != nil {
						continue
					}
					for ds.Next() {
						cands = append(cands, candidate{field: f.name, index: fi, key: k + "." + ds.Selector().String(),
							path: cue.MakePath(cue.Str(f.name), sub.Selector(), ds.Selector()), val: ds.Value(), src: si,
							plain: sub.Selector().ConstraintType() == 0 && ds.Selector().ConstraintType() == 0})
					}
					continue
				}
				if f.name != "env" && f.name != "secrets" && !l.fields.LookupPath(cue.MakePath(cue.Str(f.name).Optional(), sub.Selector().Optional())).Exists() {
					continue // unknown: reported in defaults, not copied
				}
				cands = append(cands, candidate{field: f.name, index: fi, key: k, path: cue.MakePath(cue.Str(f.name), sub.Selector()), val: sub.Value(), src: si,
					plain: sub.Selector().ConstraintType() == 0, sub: sub.Selector()})
			}
		}
	}
	return cands
}

// shared is what checking the services of one runtime shares: the values
// every service uses, and what is the same for every service, kept once
// worked out.
type shared struct {
	defaults cue.Value
	cands    []candidate             // what services can inherit
	fillers  map[string]cue.Value    // see service1
	defPos   map[string]diag.Pos     // positions in defaults, by path
	schema   map[string]*schemaField // see walkClosed
}

// service1 merges defaults into one service, validates it against
// #Service and decodes it.
func (l *Loader) service1(name string, raw cue.Value, sh *shared) (*Service, error) {
	defaults, fillers, cands, defPos := sh.defaults, sh.fillers, sh.cands, sh.defPos
	prefix := "services." + name
	decl := declRange(raw)
	svcPos := decl.Start
	// One walk of the service's own fields checks that each is allowed
	// and records them; the lookups below are answered from it.
	shape := map[string]*diag.Error{}
	own := newOwnFields(prefix, sh.schema)
	walkClosed(raw, l.fields, prefix, nil, shape, own)
	if env, ok := own.entered["env"]; ok {
		for _, f := range env {
			l.envNameErr(f.sel, f.val, prefix, shape)
		}
	} else {
		l.envNameErrs(raw, prefix, shape)
	}
	requiredErrs(raw, l.serviceReq, prefix, svcPos, shape, own)
	rawAt := func(key string, path cue.Path) cue.Value {
		if v, ok := own.get(key); ok {
			return v
		}
		return raw.LookupPath(path)
	}

	// Collect what the service inherits, then unify it with one filler
	// value built once per distinct set of inherited fields: services of a
	// project mostly inherit the same fields, and FillPath is costly.
	type fill struct {
		path cue.Path
		val  cue.Value
	}
	var fills []fill
	var inherits []candidate
	var key strings.Builder
	origin := map[string]cue.Value{} // field → raw value it came from
	srcs := [2]cue.Value{defaults, l.builtin}
	// Which of serviceFields raw has, and which the merged value has.
	has, present := make([]bool, len(serviceFields)), make([]bool, len(serviceFields))
	for i, f := range serviceFields {
		v := rawAt(f.name, f.path)
		if !v.Exists() {
			continue
		}
		has[i], present[i] = true, true
		// A struct is the service's as soon as it has one; a scalar only
		// when it has a value (a bare constraint takes the default too).
		if f.struct_ || hasValue(v) {
			origin[f.name] = raw
		}
	}
	for _, c := range cands {
		if _, ok := origin[c.key]; ok {
			continue // the service, or an earlier source, gave it
		}
		if !c.scalar && has[c.index] {
			var cur cue.Value
			if c.plain {
				cur = rawAt(c.key, c.path)
			} else {
				cur = raw.LookupPath(c.path)
			}
			if cur.Exists() && cur.IsConcrete() && !openList(cur) {
				origin[c.key] = raw
				continue
			}
		}
		if _, ok := origin[c.field]; !ok {
			origin[c.field] = srcs[c.src]
		}
		origin[c.key] = srcs[c.src]
		present[c.index] = true
		fills = append(fills, fill{c.path, c.val})
		fmt.Fprintf(&key, "%d:%s;", c.src, c.key)
		inherits = append(inherits, c)
	}
	// The filler is cached already unified with #Service, so each service
	// costs one unification.
	filler, ok := fillers[key.String()]
	if !ok {
		filler = l.service
		for _, f := range fills {
			filler = filler.FillPath(f.path, f.val)
		}
		fillers[key.String()] = filler
	}
	m := filler.Unify(raw)
	// locate finds the field's own position, in the value it came from;
	// at finds a path's position in one of those values.
	locate := func(path string, at func(src cue.Value, path string) diag.Pos) diag.Pos {
		for p := path; p != ""; {
			if src, ok := origin[p]; ok && src != l.builtin {
				if pp := at(src, path); pp.IsValid() {
					return pp
				}
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
		}
		if pp := at(raw, path); pp.IsValid() {
			return pp
		}
		return svcPos
	}
	lookup := func(path string) diag.Pos { return locate(path, lookupPos) }
	inherited := func(path string) bool {
		for p := path; ; {
			if src, ok := origin[p]; ok {
				return src == defaults
			}
			i := lastDot(p)
			if i < 0 {
				return false
			}
			p = p[:i]
		}
	}
	value := func(path string) (cue.Value, bool) {
		for p := path; ; {
			if src, ok := origin[p]; ok {
				if src == l.builtin {
					return cue.Value{}, false
				}
				x := src.LookupPath(parsePath(path))
				return x, x.Exists()
			}
			i := lastDot(p)
			if i < 0 {
				x := raw.LookupPath(parsePath(path))
				return x, x.Exists()
			}
			p = p[:i]
		}
	}
	if err := m.Validate(cue.Concrete(true), cue.All()); err != nil || len(shape) > 0 {
		err = fieldErrors(m, err)
		var errs diag.List
		errs.Add(l.convert(err, scope{root: l.service, lookup: lookup, prefix: prefix, shape: shape, inherited: inherited, value: value}))
		addAll(&errs, shape)
		return nil, errs.Err()
	}
	s := &Service{Name: name, Pos: svcPos, Fields: make(map[string]diag.Pos, len(origin))}
	s.Range = decl
	// The positions lookup gives, from the walk and with the positions in
	// defaults cached.
	posIn := func(src cue.Value, path string) diag.Pos {
		switch src {
		case raw:
			return own.lookupPos(raw, path)
		case defaults:
			pp, ok := defPos[path]
			if !ok {
				pp = lookupPos(defaults, path)
				defPos[path] = pp
			}
			return pp
		}
		return lookupPos(src, path)
	}
	for k, src := range origin {
		if src == raw {
			// Cheap and by far the most common: the service's own field.
			s.Fields[k] = pos(own.at(raw, k))
		} else if pp := locate(k, posIn); pp.IsValid() {
			s.Fields[k] = pp
		}
	}
	decodeService(s, m, present, subFields(own, has, inherits))
	// A size CUE reads but an int64 cannot hold ("10000000Ti") would
	// otherwise leave the service without its limit.
	var errs diag.List
	for _, f := range []struct {
		path, text string
		n          int64
	}{
		{"limits.memory", s.Limits.MemoryText, s.Limits.Memory},
		{"runtime.gomemlimit", s.Runtime.GOMEMLIMITText, s.Runtime.GOMEMLIMIT},
	} {
		if f.n < 0 {
			errs.Add(diag.Errorf(lookup(f.path), prefix+"."+f.path, "%s is more than berth and Go can count: at most 2^63-1 bytes (8 EiB)", f.text))
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// subFields lists the fields of the merged service's env, limits,
// runtime and outputs, by index in serviceFields: the service's own
// regular fields, which the walk found, and the inherited ones. It leaves
// nil what it does not know.
func subFields(own *ownFields, has []bool, inherits []candidate) [][]cue.Selector {
	subs := make([][]cue.Selector, len(serviceFields))
	for i, f := range serviceFields {
		if !decodeKeys[f.name] {
			continue
		}
		sels := []cue.Selector{}
		if has[i] {
			fs, ok := own.entered[f.name]
			if !ok {
				continue
			}
			known := true
			for _, x := range fs {
				if x.regular {
					sels = append(sels, x.sel)
				} else if x.sel.ConstraintType() == 0 {
					known = false // maybe regular: walk the merged struct
				}
			}
			if !known {
				continue
			}
		}
		subs[i] = sels
	}
	for _, c := range inherits {
		sels := subs[c.index]
		if sels == nil || c.scalar {
			continue
		}
		if !c.plain {
			subs[c.index] = nil
			continue
		}
		dup := false
		for _, s := range sels {
			dup = dup || s.String() == c.sub.String()
		}
		if !dup {
			subs[c.index] = append(sels, c.sub)
		}
	}
	return subs
}

// declRange is where a service is declared: its own field, not a rule
// (services: [_]: ...) that also applies to it and that CUE may name
// first.
func declRange(raw cue.Value) diag.Range {
	if op, conj := raw.Expr(); op == cue.AndOp {
		for _, c := range conj {
			f, ok := c.Source().(*ast.Field)
			if !ok {
				continue
			}
			if _, rule := f.Label.(*ast.ListLit); rule {
				continue
			}
			if r := (diag.Range{Start: tokPos(f.Pos()), End: tokPos(f.End())}); r.Start.IsValid() {
				return r
			}
		}
	}
	return rangeOf(raw)
}

// decodeKeys are the structs that decodeService reads by key when
// subFields lists their fields.
var decodeKeys = map[string]bool{"env": true, "limits": true, "runtime": true, "outputs": true}

// hasValue reports whether a service field has a value of its own: a
// concrete one, or a default (*"scratch" | "static") that CUE will pick.
// An open list ([...=~"^--"], from a rule such as services: [_]: args:)
// is a constraint on the list, not one: the inherited list is unified
// with it.
func hasValue(v cue.Value) bool {
	if v.IsConcrete() {
		return !openList(v)
	}
	d, ok := v.Default()
	return ok && d.IsConcrete() && !openList(d)
}

// openList reports whether v is a list that can take more elements: CUE
// calls any list concrete, but [...string] is a rule, not a value.
func openList(v cue.Value) bool {
	if v.IncompleteKind() != cue.ListKind {
		return false
	}
	_, err := v.Len().Int64()
	return err != nil
}

// fieldErrors adds the errors of each of the service's fields, validated
// one by one, to those of the whole: CUE stops at the first failing part
// of a struct, so another field's mistake would only show on the next
// run. And when a helper of the schema (a hidden field or let, such as
// the joined platforms a rule reads) fails, it is because a field it reads
// is not a concrete value: the user would read about a name they never
// wrote, so the fields' errors replace the helper's. (convert drops the
// repeats.)
func fieldErrors(m cue.Value, err error) error {
	if err == nil {
		return nil
	}
	list := cueerrors.Errors(err)
	var out, helpers cueerrors.Error
	for _, e := range list {
		if isHelper(e) {
			helpers = cueerrors.Append(helpers, e)
		} else {
			out = cueerrors.Append(out, e)
		}
	}
	for _, f := range serviceFields {
		if v := m.LookupPath(f.path); v.Exists() {
			if ferr := v.Validate(cue.Concrete(true), cue.All()); ferr != nil {
				out = cueerrors.Append(out, cueerrors.Promote(ferr, ""))
			}
		}
	}
	if out == nil {
		return helpers // a helper failed on concrete values: say so
	}
	return out
}

// isHelper reports whether an error is a helper's of the schema: its path
// goes through a hidden field other than _policy (whose rules report with
// error()), and it points into the schema. A hidden field of the user's
// own is theirs to read about.
func isHelper(e cueerrors.Error) bool {
	hidden := false
	for i, s := range e.Path() {
		if i > 0 && strings.HasPrefix(s, "_") && s != "_policy" {
			hidden = true
		}
	}
	if !hidden {
		return false
	}
	for _, p := range cueerrors.Positions(e) {
		if p.Filename() == schemaFile {
			return true
		}
	}
	return false
}
