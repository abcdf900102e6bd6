package config

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue"

	"github.com/berthbuild/berth/pkg/diag"
)

// Merging defaults into services, and checking each service.

// candidate is a value a service may inherit: from defaults (src 0) or
// the built-in defaults (src 1), at a path inside the service.
type candidate struct {
	field string   // top-level service field
	key   string   // dotted path ("limits.cpu")
	path  cue.Path // the same, as a path
	val   cue.Value
	src   int
	// scalar candidates are taken whole; the others (a struct's fields)
	// only when the service does not set them.
	scalar bool
}

// inheritance lists, once per project, what services can inherit, in
// merge order: the lookups into defaults are the same for every service.
func (l *Loader) inheritance(defaults cue.Value) (cands []candidate) {
	srcs := [2]cue.Value{defaults, l.builtin}
	for _, f := range serviceFields {
		for si, src := range srcs {
			dv := src.LookupPath(f.path)
			if !dv.Exists() {
				continue
			}
			if !f.struct_ {
				cands = append(cands, candidate{field: f.name, key: f.name, path: f.path, val: dv, src: si, scalar: true})
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
						cands = append(cands, candidate{field: f.name, key: k + "." + ds.Selector().String(),
							path: cue.MakePath(cue.Str(f.name), sub.Selector(), ds.Selector()), val: ds.Value(), src: si})
					}
					continue
				}
				if f.name != "env" && f.name != "secrets" && !l.fields.LookupPath(cue.MakePath(cue.Str(f.name).Optional(), sub.Selector().Optional())).Exists() {
					continue // unknown: reported in defaults, not copied
				}
				cands = append(cands, candidate{field: f.name, key: k, path: cue.MakePath(cue.Str(f.name), sub.Selector()), val: sub.Value(), src: si})
			}
		}
	}
	return cands
}

// service1 merges defaults into one service, validates it against
// #Service and decodes it.
func (l *Loader) service1(name string, raw, defaults cue.Value, fillers map[string]cue.Value, cands []candidate) (*Service, error) {
	// Collect what the service inherits, then unify it with one filler
	// value built once per distinct set of inherited fields: services of a
	// project mostly inherit the same fields, and FillPath is costly.
	type fill struct {
		path cue.Path
		val  cue.Value
	}
	var fills []fill
	var key strings.Builder
	origin := map[string]cue.Value{} // field → raw value it came from
	srcs := [2]cue.Value{defaults, l.builtin}
	has := map[string]bool{}
	for _, f := range serviceFields {
		v := raw.LookupPath(f.path)
		if !v.Exists() {
			continue
		}
		has[f.name] = true
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
		if !c.scalar && has[c.field] {
			if cur := raw.LookupPath(c.path); cur.Exists() && cur.IsConcrete() {
				origin[c.key] = raw
				continue
			}
		}
		if _, ok := origin[c.field]; !ok {
			origin[c.field] = srcs[c.src]
		}
		origin[c.key] = srcs[c.src]
		fills = append(fills, fill{c.path, c.val})
		fmt.Fprintf(&key, "%d:%s;", c.src, c.key)
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
	prefix := "services." + name
	svcPos := pos(raw)
	shape := map[string]*diag.Error{}
	closedErrs(raw, l.fields, prefix, nil, shape)
	l.envNameErrs(raw, prefix, shape)
	requiredErrs(raw, l.serviceReq, prefix, svcPos, shape)
	lookup := func(path string) diag.Pos {
		// The field's own position, in the value it came from.
		for p := path; p != ""; {
			if src, ok := origin[p]; ok && src != l.builtin {
				if pp := lookupPos(src, path); pp.IsValid() {
					return pp
				}
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
		}
		if pp := lookupPos(raw, path); pp.IsValid() {
			return pp
		}
		return svcPos
	}
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
		var errs diag.List
		errs.Add(l.convert(err, scope{root: l.service, lookup: lookup, prefix: prefix, shape: shape, inherited: inherited, value: value}))
		addAll(&errs, shape)
		return nil, errs.Err()
	}
	s := &Service{Name: name, Pos: svcPos, Fields: map[string]diag.Pos{}}
	s.Range = rangeOf(raw)
	for k, src := range origin {
		if src == raw {
			// Cheap and by far the most common: the service's own field.
			s.Fields[k] = pos(raw.LookupPath(parsePath(k)))
		} else if pp := lookup(k); pp.IsValid() {
			s.Fields[k] = pp
		}
	}
	decodeService(s, m)
	return s, nil
}

// hasValue reports whether a service field has a value of its own: a
// concrete one, or a default (*"scratch" | "static") that CUE will pick.
func hasValue(v cue.Value) bool {
	if v.IsConcrete() {
		return true
	}
	d, ok := v.Default()
	return ok && d.IsConcrete()
}
