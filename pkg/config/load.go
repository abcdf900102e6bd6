package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/token"

	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/schemas"
)

// SchemaCopy is the file `berth init` writes next to a config so that plain
// `cue vet` and editors know the schema. berth skips it and always uses the
// schema it embeds, so a stale copy cannot change a build.
const SchemaCopy = "berth_schema.cue"

// schemaFile is the file name CUE reports for the embedded schema; errors
// pointing only there are moved to the user's file.
const schemaFile = "berth:schemas/berth.cue"

var (
	pathTop             = cue.ParsePath("#Top")
	pathService         = cue.ParsePath("#Service")
	pathBuiltinDefaults = cue.ParsePath("#BuiltinDefaults")
	pathServices        = cue.ParsePath("services")
	pathDefaults        = cue.ParsePath("defaults")
)

// serviceFields are the fields of #Service, in merge order. Struct fields
// merge field by field; the others are replaced whole.
var serviceFields = []struct {
	name    string
	path    cue.Path
	struct_ bool
}{
	{"main", cue.ParsePath("main"), false},
	{"description", cue.ParsePath("description"), false},
	{"platforms", cue.ParsePath("platforms"), false},
	{"base", cue.ParsePath("base"), false},
	{"builder", cue.ParsePath("builder"), false},
	{"cgo", cue.ParsePath("cgo"), false},
	{"user", cue.ParsePath("user"), false},
	{"group", cue.ParsePath("group"), false},
	{"allowRoot", cue.ParsePath("allowRoot"), false},
	{"args", cue.ParsePath("args"), false},
	{"env", cue.ParsePath("env"), true},
	{"ports", cue.ParsePath("ports"), false},
	{"limits", cue.ParsePath("limits"), true},
	{"runtime", cue.ParsePath("runtime"), true},
	{"outputs", cue.ParsePath("outputs"), true},
	{"systemd", cue.ParsePath("systemd"), true},
	{"secrets", cue.ParsePath("secrets"), true},
}

// Loader loads projects. It compiles the embedded schema once; a Loader is
// not safe for concurrent use (CUE values are not).
type Loader struct {
	ctx     *cue.Context
	schema  cue.Value
	top     cue.Value
	service cue.Value
	fields  cue.Value
	builtin cue.Value

	topReq, serviceReq []cue.Selector
	envName            *regexp.Regexp
}

// NewLoader compiles the embedded schema.
func NewLoader() (*Loader, error) {
	src, err := schemas.FS.ReadFile(schemas.File)
	if err != nil {
		return nil, err
	}
	ctx := cuecontext.New()
	s := ctx.CompileBytes(src, cue.Filename(schemaFile))
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("berth's embedded schema does not compile: %w", err)
	}
	l := &Loader{
		ctx:     ctx,
		schema:  s,
		top:     s.LookupPath(pathTop),
		service: s.LookupPath(pathService),
		fields:  s.LookupPath(cue.ParsePath("#Fields")),
		builtin: s.LookupPath(pathBuiltinDefaults),
	}
	re, _ := s.LookupPath(cue.ParsePath("#EnvNameRe")).String()
	l.envName, err = regexp.Compile(re)
	if err != nil {
		return nil, err
	}
	l.topReq = required(l.top)
	l.serviceReq = required(l.service)
	return l, nil
}

// Load loads every .cue file of dir with a fresh Loader.
func Load(dir string) (*Project, error) {
	l, err := NewLoader()
	if err != nil {
		return nil, err
	}
	return l.Load(dir)
}

// ConfigFiles lists the .cue files berth reads in dir, sorted.
func ConfigFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".cue") || n == SchemaCopy || strings.HasPrefix(n, ".") {
			continue
		}
		files = append(files, filepath.Join(dir, n))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .cue files in %s: run `berth init` to write a starter config", dir)
	}
	return files, nil
}

// Load loads every .cue file of dir (the schema copy excepted), validates
// it and returns the project, or a *diag.List with every mistake.
func (l *Loader) Load(dir string) (*Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	files, err := ConfigFiles(abs)
	if err != nil {
		return nil, err
	}
	src := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		src[filepath.Base(f)] = b
	}
	return l.LoadSource(abs, src)
}

// LoadSource loads a project from in-memory files (base name → content),
// as if they were the .cue files of dir.
func (l *Loader) LoadSource(dir string, files map[string][]byte) (*Project, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no .cue files in %s", dir)
	}
	p := &Project{Dir: dir, Sources: map[string][]byte{}, Fields: map[string]diag.Pos{}}
	for _, n := range names {
		f := filepath.Join(dir, n)
		p.Files = append(p.Files, f)
		p.Sources[f] = files[n]
	}
	v, err := l.build(p)
	if err != nil {
		return nil, err
	}
	return l.decode(p, v)
}

// build loads the project's files as one CUE instance.
func (l *Loader) build(p *Project) (cue.Value, error) {
	overlay := map[string]load.Source{}
	rel := make([]string, len(p.Files))
	for i, f := range p.Files {
		overlay[f] = load.FromBytes(p.Sources[f])
		rel[i] = "./" + filepath.Base(f)
	}
	insts := load.Instances(rel, &load.Config{Dir: p.Dir, Overlay: overlay, Package: "*"})
	if len(insts) != 1 {
		return cue.Value{}, fmt.Errorf("%s: the .cue files must form one package, found %d", p.Dir, len(insts))
	}
	if err := insts[0].Err; err != nil {
		return cue.Value{}, l.convert(err, scope{})
	}
	v := l.ctx.BuildInstance(insts[0])
	if err := v.Err(); err != nil {
		// Some of these (a structural cycle) carry no position: point at
		// the field, or at least at the file.
		first := diag.Pos{File: p.Files[0], Line: 1, Col: 1}
		return cue.Value{}, l.convert(err, scope{lookup: func(path string) diag.Pos {
			if pp := lookupPos(v, path); pp.IsValid() {
				return pp
			}
			return first
		}})
	}
	return v, nil
}

// parallelMin is the number of services from which checking is spread
// over several CUE runtimes, one per core: a runtime is not safe for
// concurrent use, and a second one costs a schema compile and a build.
const parallelMin = 200

func (l *Loader) decode(p *Project, v cue.Value) (*Project, error) {
	var names []string
	if it, err := v.LookupPath(pathServices).Fields(); err == nil {
		for it.Next() {
			if name := it.Selector().Unquoted(); validName(name) {
				names = append(names, name) // others are reported by #Top
			}
		}
	}
	workers := 1
	if len(names) >= parallelMin {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	svcs := make([]*Service, len(names))
	errs := make([]error, len(names)+workers)
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wl, err := NewLoader()
			if err == nil {
				var wv cue.Value
				if wv, err = wl.build(p); err == nil {
					wl.services(wv, names, w, workers, svcs, errs)
				}
			}
			errs[len(names)+w] = err
		}()
	}
	var top diag.List
	l.top1(p, v, &top)
	errs[len(names)] = top.Err()
	l.services(v, names, 0, workers, svcs, errs)
	wg.Wait()

	var all diag.List
	all.Add(errs...)
	if err := all.Err(); err != nil {
		return nil, err
	}
	p.Services = svcs
	sort.Slice(p.Services, func(i, j int) bool { return p.Services[i].Name < p.Services[j].Name })
	return p, nil
}

// top1 checks and decodes everything but the services' contents.
func (l *Loader) top1(p *Project, v cue.Value, errs *diag.List) {
	shape := map[string]*diag.Error{}
	closedErrs(v, l.top, "", map[string]bool{"services": true}, shape)
	l.envNameErrs(v.LookupPath(pathDefaults), "defaults", shape)
	var first diag.Pos
	if len(p.Files) > 0 {
		first = diag.Pos{File: p.Files[0], Line: 1, Col: 1}
	}
	requiredErrs(v, l.topReq, "", first, shape)
	top := l.top.Unify(v)
	if err := top.Validate(cue.Concrete(true), cue.All()); err != nil {
		errs.Add(l.convert(err, scope{
			root:   l.top,
			lookup: func(path string) diag.Pos { return lookupPos(v, path) },
			shape:  shape,
			value: func(path string) (cue.Value, bool) {
				x := v.LookupPath(parsePath(path))
				return x, x.Exists()
			},
			// Services' contents are checked one by one, with defaults.
			skip: func(path string) bool { return strings.Count(path, ".") > 1 && strings.HasPrefix(path, "services.") },
		}))
	}
	addAll(errs, shape)
	p.Name, _ = str(v.LookupPath(p_project))
	p.Fields["project"] = pos(v.LookupPath(p_project))
	if ver := v.LookupPath(p_version_top); ver.Exists() {
		p.Version, _ = str(ver)
		p.Fields["version"] = pos(ver)
	}
	if g := v.LookupPath(cue.ParsePath("go")); g.Exists() {
		p.Fields["go"] = pos(g)
		decodeGo(&p.Go, g, p.Fields)
	}
}

// services checks every workers-th service starting at the first, storing
// results by index so the outcome does not depend on scheduling.
func (l *Loader) services(v cue.Value, names []string, first, workers int, out []*Service, errs []error) {
	defaults := v.LookupPath(pathDefaults)
	all := v.LookupPath(pathServices)
	fillers := map[string]cue.Value{}
	cands := l.inheritance(defaults)
	for i := first; i < len(names); i += workers {
		raw := all.LookupPath(cue.MakePath(cue.Str(names[i])))
		out[i], errs[i] = l.service1(names[i], raw, defaults, fillers, cands)
	}
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func validName(n string) bool { return len(n) <= 63 && nameRe.MatchString(n) }

// service1 merges defaults into one service, validates it against
// #Service and decodes it.
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
				if pp := lookupPos(src, pathIn(src, raw, prefix, path)); pp.IsValid() {
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

// pathIn returns path as seen from src: unchanged, since service and
// defaults share the field layout.
func pathIn(_, _ cue.Value, _ string, path string) string { return path }

var (
	p_project        = cue.ParsePath("project")
	p_version_top    = cue.ParsePath("version")
	p_allowRoot      = cue.ParsePath("allowRoot")
	p_args           = cue.ParsePath("args")
	p_base           = cue.ParsePath("base")
	p_binary         = cue.ParsePath("binary")
	p_builder        = cue.ParsePath("builder")
	p_cgo            = cue.ParsePath("cgo")
	p_cpu            = cue.ParsePath("cpu")
	p_description    = cue.ParsePath("description")
	p_dockerfile     = cue.ParsePath("dockerfile")
	p_env            = cue.ParsePath("env")
	p_flags          = cue.ParsePath("flags")
	p_gomaxprocs     = cue.ParsePath("gomaxprocs")
	p_gomemlimit     = cue.ParsePath("gomemlimit")
	p_group          = cue.ParsePath("group")
	p_image          = cue.ParsePath("image")
	p_limits         = cue.ParsePath("limits")
	p_main           = cue.ParsePath("main")
	p_memory         = cue.ParsePath("memory")
	p_nofile         = cue.ParsePath("nofile")
	p_outputs        = cue.ParsePath("outputs")
	p_platforms      = cue.ParsePath("platforms")
	p_ports          = cue.ParsePath("ports")
	p_private        = cue.ParsePath("private")
	p_proxy          = cue.ParsePath("proxy")
	p_runtime        = cue.ParsePath("runtime")
	p_stamp_date     = cue.ParsePath("stamp.date")
	p_stamp_revision = cue.ParsePath("stamp.revision")
	p_stamp_version  = cue.ParsePath("stamp.version")
	p_sumdb          = cue.ParsePath("sumdb")
	p_systemd        = cue.ParsePath("systemd")
	p_tags           = cue.ParsePath("tags")
	p_tasks          = cue.ParsePath("tasks")
	p_user           = cue.ParsePath("user")
	p_version        = cue.ParsePath("version")
)

func decodeGo(g *Go, v cue.Value, fields map[string]diag.Pos) {
	g.Version, _ = str(v.LookupPath(p_version))
	g.Proxy, _ = str(v.LookupPath(p_proxy))
	g.SumDB, _ = str(v.LookupPath(p_sumdb))
	g.Private, _ = str(v.LookupPath(p_private))
	g.Flags = strs(v.LookupPath(p_flags))
	g.Tags = strs(v.LookupPath(p_tags))
	g.Stamp.Version, _ = str(v.LookupPath(p_stamp_version))
	g.Stamp.Revision, _ = str(v.LookupPath(p_stamp_revision))
	g.Stamp.Date, _ = str(v.LookupPath(p_stamp_date))
	for _, f := range []string{"version", "proxy", "sumdb", "private", "flags", "tags", "stamp"} {
		if x := v.LookupPath(cue.ParsePath(f)); x.Exists() {
			fields["go."+f] = pos(x)
		}
	}
}

// decodeService reads a validated service. It walks each struct once:
// a LookupPath per field costs far more on thousands of services.
func decodeService(s *Service, v cue.Value) {
	group := -1
	var out cue.Value
	it, _ := v.Fields()
	for it.Next() {
		f := it.Value()
		switch it.Selector().Unquoted() {
		case "main":
			s.Main, _ = f.String()
		case "description":
			s.Description, _ = f.String()
		case "platforms":
			for _, p := range strs(f) {
				s.Platforms = append(s.Platforms, ParsePlatform(p))
			}
		case "base":
			s.Base, _ = f.String()
		case "builder":
			s.Builder, _ = f.String()
		case "cgo":
			s.CGO, _ = f.Bool()
		case "user":
			u, _ := f.Int64()
			s.User = int(u)
		case "group":
			g, _ := f.Int64()
			group = int(g)
		case "allowRoot":
			s.AllowRoot, _ = f.Bool()
		case "args":
			s.Args = strs(f)
		case "env":
			env, _ := f.Fields()
			for env.Next() {
				val, _ := env.Value().String()
				s.Env = append(s.Env, EnvVar{Name: env.Selector().Unquoted(), Value: val})
			}
			sort.Slice(s.Env, func(i, j int) bool { return s.Env[i].Name < s.Env[j].Name })
		case "ports":
			ports, _ := f.List()
			for ports.Next() {
				s.Ports = append(s.Ports, parsePort(ports.Value()))
			}
		case "limits":
			lim, _ := f.Fields()
			for lim.Next() {
				x := lim.Value()
				switch lim.Selector().Unquoted() {
				case "cpu":
					s.Limits.CPU, _ = x.Float64()
				case "memory":
					s.Limits.Memory, s.Limits.MemoryText = bytesOf(x)
				case "nofile":
					s.Limits.NoFile, _ = x.Int64()
				case "tasks":
					s.Limits.Tasks, _ = x.Int64()
				}
			}
		case "runtime":
			rt, _ := f.Fields()
			for rt.Next() {
				x := rt.Value()
				switch rt.Selector().Unquoted() {
				case "gomaxprocs":
					n, _ := x.Int64()
					s.Runtime.GOMAXPROCS = int(n)
				case "gomemlimit":
					s.Runtime.GOMEMLIMIT, s.Runtime.GOMEMLIMITText = bytesOf(x)
				}
			}
		case "outputs":
			out = f
		case "secrets":
			sec, _ := f.Fields()
			for sec.Next() {
				x := sec.Value()
				e, _ := x.LookupPath(cue.ParsePath("env")).String()
				file, _ := x.LookupPath(cue.ParsePath("file")).String()
				s.Secrets = append(s.Secrets, Secret{Name: sec.Selector().Unquoted(), Env: e, File: file})
			}
			sort.Slice(s.Secrets, func(i, j int) bool { return s.Secrets[i].Name < s.Secrets[j].Name })
		case "systemd":
			secs, _ := f.Fields()
			for secs.Next() {
				ds, _ := secs.Value().Fields()
				for ds.Next() {
					val, _ := ds.Value().String()
					s.Systemd = append(s.Systemd, Directive{Section: secs.Selector().Unquoted(), Name: ds.Selector().Unquoted(), Value: val})
				}
			}
			sort.SliceStable(s.Systemd, func(i, j int) bool {
				a, b := s.Systemd[i], s.Systemd[j]
				if a.Section != b.Section {
					return a.Section < b.Section
				}
				return a.Name < b.Name
			})
		}
	}
	s.Group = s.User
	if group >= 0 {
		s.Group = group
	}
	// Image, unit and Dockerfile default to on when every platform is
	// linux; the schema refuses them explicitly on for other platforms.
	allLinux := len(s.Platforms) > 0
	for _, p := range s.Platforms {
		allLinux = allLinux && p.OS == "linux"
	}
	s.Outputs = Outputs{Binary: true, Image: allLinux, Systemd: allLinux, Dockerfile: allLinux}
	if o, err := out.Fields(); err == nil {
		for o.Next() {
			b, err := o.Value().Bool()
			if err != nil {
				continue
			}
			switch o.Selector().Unquoted() {
			case "binary":
				s.Outputs.Binary = b
			case "image":
				s.Outputs.Image = b
			case "systemd":
				s.Outputs.Systemd = b
			case "dockerfile":
				s.Outputs.Dockerfile = b
			}
		}
	}
}

func boolOr(v cue.Value, def bool) bool {
	if b, err := v.Bool(); err == nil {
		return b
	}
	return def
}

func parsePort(v cue.Value) Port {
	if n, err := v.Int64(); err == nil {
		return Port{Num: int(n), Proto: "tcp"}
	}
	s, _ := v.String()
	num, proto, _ := strings.Cut(s, "/")
	n, _ := strconv.Atoi(num)
	return Port{Num: n, Proto: proto}
}

var units = map[string]int64{
	"": 1, "B": 1,
	"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// bytesOf reads a validated memory size.
func bytesOf(v cue.Value) (int64, string) {
	if n, err := v.Int64(); err == nil {
		return n, strconv.FormatInt(n, 10)
	}
	s, _ := v.String()
	return ParseBytes(s), s
}

// ParseBytes converts a size such as "256Mi", "1G" or "230MiB" to bytes;
// it returns -1 for what it cannot read.
func ParseBytes(s string) int64 {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return -1
	}
	u, ok := units[s[i:]]
	if !ok || n > math.MaxInt64/u {
		return -1
	}
	return n * u
}

func str(v cue.Value) (string, bool) {
	s, err := v.String()
	return s, err == nil
}

func strs(v cue.Value) []string {
	it, err := v.List()
	if err != nil {
		return nil
	}
	var out []string
	for it.Next() {
		s, _ := it.Value().String()
		out = append(out, s)
	}
	return out
}

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
	for path != "" {
		x := v.LookupPath(parsePath(path))
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

// convert turns CUE errors into diag errors: paths without the schema's
// definition or _policy selectors, prefixed, positions in the user's files
// only (the field's own position first), one error per path and message.
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
			if s == "_policy" {
				policy = true
			} else {
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
		if m, field, at := fieldMsg(sc.root, full); m != "" && sc.value != nil {
			// Only when the user's own value breaks our constraint: a
			// conflict with their own rules keeps CUE's message.
			if uv, ok := sc.value(at); ok && field.Unify(uv).Validate(cue.Concrete(true)) != nil {
				msg, rewritten = m, true
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
	it, err := v.LookupPath(cue.ParsePath("env")).Fields()
	if err != nil {
		return
	}
	for it.Next() {
		if name := it.Selector().Unquoted(); !l.envName.MatchString(name) {
			path := join(prefix, "env."+it.Selector().String())
			out[path] = &diag.Error{Path: path, Msg: "environment variable name must match " + envNameDoc, Pos: nonEmpty(pos(it.Value()))}
		}
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
