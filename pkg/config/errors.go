package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/berthbuild/berth/pkg/diag"
)

// Turning CUE errors into positioned diagnostics.

// scope says how to report errors found while checking one value.
type scope struct {
	// root is the schema definition checked against; its fields' @msg
	// attributes give the messages.
	root cue.Value
	// lookup finds the position of a path in the user's files.
	lookup func(path string) diag.Pos
	// prefix is prepended to every path ("services.api").
	prefix string
	// shape holds the unknown and missing fields already reported; CUE's
	// own report of them, or of anything below them, is dropped.
	shape map[string]*diag.Error
	// inherited says whether a path's value came from defaults: a value
	// error there is a mistake in defaults, reported once, there.
	inherited func(path string) bool
	// value returns the value the user wrote at a path (in the service or
	// in defaults); false for values from the built-in defaults.
	value func(path string) (cue.Value, bool)
	// skip drops errors at paths checked elsewhere.
	skip func(path string) bool
}

// convert turns CUE errors into diag errors: paths without the schema's
// definition or _policy selectors, positions in the user's files only
// (the field's own position first), one error per mistake.
func (l *Loader) convert(err error, sc scope) error {
	var out diag.List
	if err == nil {
		return nil
	}
	type conv struct {
		err       *diag.Error
		rewritten bool
	}
	var errs []conv
	list := cueerrors.Errors(err)
	for i, e := range list {
		if sumsUp(list, i) {
			continue
		}
		var sels, full []string
		policy := false
		for i, s := range e.Path() {
			if i == 0 && strings.HasPrefix(s, "#") {
				continue
			}
			full = append(full, s)
			switch {
			case s == "_policy":
				policy = true
			case policy && isQuotedIndex(s):
				// A rule about a list's element names it "\(i)": a
				// policy's labels are strings.
				sels = append(sels, s[1:len(s)-1])
			default:
				sels = append(sels, s)
			}
		}
		rel := strings.Join(sels, ".")
		format, args := e.Msg()
		msg := strings.TrimSuffix(fmt.Sprintf(format, args...), ":")
		// Where our own schema's constraint failed, say it in the words of
		// the field's @msg; a conflict between only the user's own values
		// and rules keeps CUE's message.
		rewritten := false
		incomplete := strings.HasPrefix(msg, "incomplete value ") || strings.Contains(msg, "non-concrete value")
		if m, field, at := fieldMsg(sc.root, full); !incomplete && m != "" && sc.value != nil {
			// Only when the user's own value breaks our constraint: a
			// conflict with their own rules keeps CUE's message, and so
			// does a value that is only not concrete yet (see below).
			if uv, ok := sc.value(at); ok {
				if u := field.Unify(uv); u.Validate() != nil {
					msg, rewritten = m, true
				} else if u.Validate(cue.Concrete(true)) != nil {
					incomplete = true
				}
			}
		}
		if incomplete {
			// A type or a bound where a value is needed (`description:
			// string`): not a value our rule refuses. CUE's message shows
			// the field's merged constraint, the schema's part included;
			// the user's own expression says it better.
			msg = incompleteMsg
			if sc.value != nil {
				if uv, ok := sc.value(rel); ok {
					msg += fmt.Sprintf(" (here: %v)", uv)
				}
			}
		}
		// A conflict's own positions in the user's files come first: they
		// are the values that disagree. A rule of ours (a policy, a
		// missing field, a value our constraint refuses) points at the
		// field first.
		var ps []diag.Pos
		for _, tp := range cueerrors.Positions(e) {
			if p := tokPos(tp); p.IsValid() {
				ps = append(ps, p)
			}
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Less(ps[j]) })
		if sc.lookup != nil && (len(ps) == 0 || rewritten || policy) {
			if p := sc.lookup(rel); p.IsValid() {
				ps = append([]diag.Pos{p}, ps...)
			}
		}
		ps = uniq(ps)
		path := join(sc.prefix, rel)
		if sc.skip != nil && sc.skip(path) {
			continue
		}
		if !policy && sc.inherited != nil && rel != "" && sc.inherited(rel) {
			path = join("defaults", rel)
		}
		if underShape(sc.shape, path) {
			continue // reported by the shape checks
		}
		errs = append(errs, conv{&diag.Error{Path: path, Msg: msg, Pos: ps}, rewritten})
	}
	// A failed disjunction reports itself and each branch: where the
	// field's @msg says it all keep only that; drop an error without any
	// position where the same path has positioned ones; merge the
	// positions of errors that say the same thing.
	said, placed := map[string]bool{}, map[string]bool{}
	for _, c := range errs {
		p := c.err.Path
		said[p] = said[p] || c.rewritten
		placed[p] = placed[p] || len(c.err.Pos) > 0
	}
	kept := map[string]*diag.Error{}
	for _, c := range errs {
		if said[c.err.Path] && !c.rewritten {
			continue
		}
		if len(c.err.Pos) == 0 && placed[c.err.Path] {
			continue
		}
		k := c.err.Path + "\x00" + c.err.Msg
		if prev := kept[k]; prev != nil {
			prev.Pos = uniq(append(prev.Pos, c.err.Pos...))
			continue
		}
		kept[k] = c.err
		out.Add(c.err)
	}
	return out.Err()
}

// incompleteMsg is the error for a field without a concrete value.
const incompleteMsg = "needs a concrete value, not only a type or bounds"

// sumsUp reports whether list[i] only sums up the errors after it: a
// failed disjunction is reported as an error whose one argument is the
// number N of its branches, followed by the N branch errors at the same
// path, which say what is wrong.
func sumsUp(list []cueerrors.Error, i int) bool {
	_, args := list[i].Msg()
	if len(args) != 1 {
		return false
	}
	n, ok := args[0].(int)
	if !ok || n < 2 || i+n >= len(list) {
		return false
	}
	path := strings.Join(list[i].Path(), ".")
	for _, e := range list[i+1 : i+1+n] {
		if strings.Join(e.Path(), ".") != path {
			return false
		}
	}
	return true
}

// uniq drops repeated positions, keeping the first of each.
func uniq(ps []diag.Pos) []diag.Pos {
	out := ps[:0]
	seen := map[diag.Pos]bool{}
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// underShape reports whether path or one of its ancestors has a shape error.
func underShape(shape map[string]*diag.Error, path string) bool {
	for p := path; ; {
		if shape[p] != nil {
			return true
		}
		i := lastDot(p)
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// fieldMsg returns the @msg of the deepest field along path in root, the
// field's schema and its path.
func fieldMsg(root cue.Value, path []string) (msg string, field cue.Value, at string) {
	if !root.Exists() {
		return "", cue.Value{}, ""
	}
	v := root
	for i, s := range path {
		if strings.HasPrefix(s, "_") {
			break // hidden rules report with error()
		}
		v = v.LookupPath(optional(parsePath(s)))
		if !v.Exists() {
			break
		}
		if a := v.Attribute("msg"); a.Err() == nil {
			if m, err := a.String(0); err == nil {
				msg, field, at = m, v, strings.Join(path[:i+1], ".")
			}
		}
	}
	return msg, field, at
}

// envNameErrs reports environment variable names that the schema's
// #EnvNameRe refuses. The schema's own rule iterates over env, which CUE
// cannot do while a value in env is wrong, so a bad name would hide behind
// a bad value.
func (l *Loader) envNameErrs(v cue.Value, prefix string, out map[string]*diag.Error) {
	it, err := v.LookupPath(p_env).Fields()
	if err != nil {
		return
	}
	for it.Next() {
		l.envNameErr(it.Selector(), it.Value(), prefix, out)
	}
}

// envNameErr reports env's field sel if its name is refused.
func (l *Loader) envNameErr(sel cue.Selector, v cue.Value, prefix string, out map[string]*diag.Error) {
	if name := sel.Unquoted(); !l.envName.MatchString(name) {
		path := join(prefix, "env."+sel.String())
		out[path] = &diag.Error{Path: path, Msg: "environment variable name must match " + envNameDoc, Pos: nonEmpty(pos(v))}
	}
}

const envNameDoc = "[A-Za-z_][A-Za-z0-9_]*"

func addAll(l *diag.List, m map[string]*diag.Error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l.Add(m[k])
	}
}

// isQuotedIndex reports whether a path element is a quoted list index,
// such as "2".
func isQuotedIndex(s string) bool {
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	_, err := strconv.Atoi(s[1 : len(s)-1])
	return err == nil
}
