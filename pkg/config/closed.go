package config

import (
	"sort"
	"strings"

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
	walkClosed(user, schema, prefix, skip, out, nil)
}

// walkClosed is closedErrs; with own, it also records the fields it sees
// and keeps what it asks the schema in own.schema.
func walkClosed(user, schema cue.Value, prefix string, skip map[string]bool, out map[string]*diag.Error, own *ownFields) {
	it, err := user.Fields()
	if err != nil {
		return
	}
	own.enter(prefix, user)
	for it.Next() {
		sel := it.Selector()
		path := join(prefix, sel.String())
		own.add(prefix, path, sel, it.Value())
		sf := &schemaField{}
		if own != nil {
			rel := own.rel(path)
			if cached := own.schema[rel]; cached != nil {
				sf = cached
			} else {
				own.schema[rel] = sf
			}
		}
		if !sf.allows(schema, sel) {
			out[path] = &diag.Error{Path: path, Msg: sf.msg, Pos: nonEmpty(pos(it.Value()))}
			continue
		}
		if skip[path] || it.Value().IncompleteKind() != cue.StructKind {
			continue
		}
		if sub, ok := sf.sub(schema, sel); ok {
			walkClosed(it.Value(), sub, path, skip, out, own)
		}
	}
}

// schemaField is what walkClosed asks the schema about a field: the
// answers are the same for every service, and each question costs CUE a
// new evaluation context.
type schemaField struct {
	asked, allowed bool
	msg            string // when not allowed
	subAsked       bool
	subSchema      cue.Value
	subOK          bool
}

// allows reports whether schema allows sel, and if not, says why in msg.
func (f *schemaField) allows(schema cue.Value, sel cue.Selector) bool {
	if !f.asked {
		f.asked, f.allowed = true, schema.Allows(sel)
		if !f.allowed {
			f.msg = "field not allowed"
			if s := suggest(sel.Unquoted(), schema); s != "" {
				f.msg += "; did you mean " + s + "?"
			}
		}
	}
	return f.allowed
}

// sub returns the schema of the field, if it is one of a struct.
func (f *schemaField) sub(schema cue.Value, sel cue.Selector) (cue.Value, bool) {
	if !f.subAsked {
		sub := schema.LookupPath(cue.MakePath(sel.Optional()))
		f.subAsked, f.subSchema, f.subOK = true, sub, sub.Exists() && sub.IncompleteKind()&cue.StructKind != 0
	}
	return f.subSchema, f.subOK
}

// ownField is a field of a struct that walkClosed entered.
type ownField struct {
	sel cue.Selector
	val cue.Value
	// regular: a regular field, as LookupPath finds it. Fields shows a
	// required field as a regular one holding an error, so fields that
	// hold an error are left to LookupPath.
	regular bool
}

// ownFields are a service's own fields as walkClosed found them, by
// dotted path relative to the service (labels written as
// Selector.String writes them), in every struct it entered. Each
// LookupPath costs CUE a new evaluation context; for the paths below an
// entered struct, these answer the same without one.
type ownFields struct {
	cut     int                   // length of the service's path and its dot
	entered map[string][]ownField // struct ("" is the service) → all its fields
	vals    map[string]cue.Value  // regular fields of the entered structs
	unsure  map[string]bool       // fields of theirs left to LookupPath
	// schema holds the schema's answers by path, for all services.
	schema map[string]*schemaField
}

func newOwnFields(prefix string, schema map[string]*schemaField) *ownFields {
	return &ownFields{cut: len(prefix) + 1, entered: map[string][]ownField{}, vals: map[string]cue.Value{}, unsure: map[string]bool{}, schema: schema}
}

func (o *ownFields) rel(path string) string {
	if len(path) < o.cut {
		return ""
	}
	return path[o.cut:]
}

// enter records that the fields of v, at path, are being walked. A value
// with a default is left out, and so everything below it: Fields walks
// the default, LookupPath the value itself.
func (o *ownFields) enter(path string, v cue.Value) {
	if o == nil {
		return
	}
	p := o.rel(path)
	if p != "" {
		if _, ok := o.entered[parentPath(p)]; !ok {
			return
		}
	}
	if _, isDefault := v.Default(); !isDefault {
		o.entered[p] = []ownField{}
	}
}

func (o *ownFields) add(parent, path string, sel cue.Selector, v cue.Value) {
	if o == nil {
		return
	}
	p := o.rel(parent)
	fs, ok := o.entered[p]
	if !ok {
		return
	}
	f := ownField{sel: sel, val: v}
	if sel.ConstraintType() == 0 {
		// What LookupPath finds is a regular field, not a constraint.
		f.regular = v.IncompleteKind() != cue.BottomKind
		if f.regular {
			o.vals[o.rel(path)] = v
		} else {
			o.unsure[o.rel(path)] = true
		}
	}
	o.entered[p] = append(fs, f)
}

// get returns what raw.LookupPath(parsePath(path)) returns (as far as
// Exists and the value go), when the walk has the answer: path is written
// without quotes (each part is then the label itself, as Selector.String
// writes it), and the walk entered its parent or found that a field above
// it does not exist.
func (o *ownFields) get(path string) (cue.Value, bool) {
	if strings.IndexByte(path, '"') >= 0 {
		return cue.Value{}, false
	}
	return o.get1(path)
}

func (o *ownFields) get1(path string) (cue.Value, bool) {
	if o.unsure[path] {
		return cue.Value{}, false
	}
	parent := parentPath(path)
	if _, ok := o.entered[parent]; ok {
		return o.vals[path], true // the zero Value does not exist
	}
	if parent == "" {
		return cue.Value{}, false
	}
	// Nothing exists below a field that does not exist.
	if p, ok := o.get1(parent); ok && !p.Exists() {
		return cue.Value{}, true
	}
	return cue.Value{}, false
}

// at is raw.LookupPath(parsePath(path)), from the walk where it can be.
func (o *ownFields) at(raw cue.Value, path string) cue.Value {
	if x, ok := o.get(path); ok {
		return x
	}
	return raw.LookupPath(parsePath(path))
}

// lookupPos is lookupPos(raw, path), from the walk where it can be.
func (o *ownFields) lookupPos(raw cue.Value, path string) diag.Pos {
	return nearestPos(path, func(p string) cue.Value { return o.at(raw, p) })
}

// parentPath is the dotted path of the struct holding path's last field,
// "" for a field at the top.
func parentPath(path string) string {
	if i := lastDot(path); i >= 0 {
		return path[:i]
	}
	return ""
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

// requiredErrs reports the fields of req that v lacks, at at. own, if
// not nil, holds v's fields.
func requiredErrs(v cue.Value, req []cue.Selector, prefix string, at diag.Pos, out map[string]*diag.Error, own *ownFields) {
	for _, sel := range req {
		if name := sel.Unquoted(); own != nil && !strings.Contains(name, ".") {
			// A regular field is what the lookup below finds first.
			if x, ok := own.get(name); ok && x.Exists() {
				continue
			}
		}
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
