package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"

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
	inst, v, err := l.build(p)
	if err != nil {
		return nil, err
	}
	return l.decode(p, inst, v)
}

// build loads the project's files as one CUE instance.
func (l *Loader) build(p *Project) (*build.Instance, cue.Value, error) {
	overlay := map[string]load.Source{}
	rel := make([]string, len(p.Files))
	for i, f := range p.Files {
		overlay[f] = load.FromBytes(p.Sources[f])
		rel[i] = "./" + filepath.Base(f)
	}
	insts := load.Instances(rel, &load.Config{Dir: p.Dir, Overlay: overlay, Package: "*"})
	if len(insts) != 1 {
		return nil, cue.Value{}, fmt.Errorf("%s: the .cue files must form one package, found %d", p.Dir, len(insts))
	}
	if err := insts[0].Err; err != nil {
		return nil, cue.Value{}, l.convert(err, scope{})
	}
	v, err := l.buildInstance(p, insts[0])
	return insts[0], v, err
}

// buildInstance builds a loaded instance in l's runtime. The first build
// completes the instance (resolves its identifiers); after it, building
// only reads the instance, so other runtimes build it again without
// loading and parsing the files again.
func (l *Loader) buildInstance(p *Project, inst *build.Instance) (cue.Value, error) {
	v := l.ctx.BuildInstance(inst)
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

func (l *Loader) decode(p *Project, inst *build.Instance, v cue.Value) (*Project, error) {
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
	// Each runtime takes the next service not yet taken, so that one that
	// starts late (the others build the instance again, while this one
	// checks the top level) takes fewer.
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wl, err := NewLoader()
			if err == nil {
				var wv cue.Value
				if wv, err = wl.buildInstance(p, inst); err == nil {
					wl.services(wv, names, &next, svcs, errs)
				}
			}
			errs[len(names)+w] = err
		}()
	}
	var top diag.List
	l.top1(p, v, &top)
	errs[len(names)] = top.Err()
	l.services(v, names, &next, svcs, errs)
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
	requiredErrs(v, l.topReq, "", first, shape, nil)
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
	if b := v.LookupPath(cue.ParsePath("builders")); b.Exists() {
		p.Builders = decodeBuilders(b, p.Fields)
	}
	if c := v.LookupPath(cue.ParsePath("cache")); c.Exists() {
		p.Fields["cache"] = pos(c)
		p.Cache.From = strs(c.LookupPath(cue.ParsePath("from")))
		p.Cache.To = strs(c.LookupPath(cue.ParsePath("to")))
	}
}

// services checks the services it takes from next until none is left,
// storing results by index so the outcome does not depend on scheduling.
func (l *Loader) services(v cue.Value, names []string, next *atomic.Int64, out []*Service, errs []error) {
	defaults := v.LookupPath(pathDefaults)
	all := v.LookupPath(pathServices)
	sh := &shared{
		defaults: defaults,
		cands:    l.inheritance(defaults),
		fillers:  map[string]cue.Value{},
		defPos:   map[string]diag.Pos{},
		schema:   map[string]*schemaField{},
	}
	for {
		i := int(next.Add(1) - 1)
		if i >= len(names) {
			return
		}
		raw := all.LookupPath(cue.MakePath(cue.Str(names[i])))
		out[i], errs[i] = l.service1(names[i], raw, sh)
	}
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func validName(n string) bool { return len(n) <= 63 && nameRe.MatchString(n) }
