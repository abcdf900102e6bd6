package config

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/diag"
)

// fuzzFile is the file fuzzed configs are loaded as.
var fuzzFile = filepath.Join(testDir, "berth.cue")

// FuzzLoad: for any berth.cue, loading never panics; a config is either
// loaded, with its services sorted and every recorded position in the
// file, or refused with a *diag.List or *diag.Error whose every error
// points at the file (File set, line and column from 1), so that the user
// sees where the mistake is. Seeds are the examples' configs, the configs
// below and testdata/fuzz/FuzzLoad (valid-* and invalid-* configs).
func FuzzLoad(f *testing.F) {
	examples, err := filepath.Glob("../../examples/*/berth.cue")
	if err != nil || len(examples) == 0 {
		f.Fatalf("no example configs (%v)", err)
	}
	for _, ex := range examples {
		b, err := os.ReadFile(ex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"package berth\nproject: \"p\"\nservices: a: main: \".\"\n",
		"package berth\nproject: \"p\"\nservices: a: {main: \".\", limits: {cpu: 0.5, memory: 1}}\n",
		"package berth\nproject: \"p\"\nservices: a: {main: \".\", env: {\"a\\\"b\": \"x\"}}\n",
		"package berth\nproject: \"p\"\nservices: a: {main: \"./..\", base: \"alpine:latest\"}\n",
		"package berth\nproject: \"p\"\nservices: a: {main: \".\"}\nservices: a: main: string\n",
		"project: \"p\"\nservices: a: main: \".\"\n",
		"package berth\nservices: {}\n",
		"package berth\nx: y\ny: x\n",
		"package berth\nproject: \"p\"\nservices: a: {main: \".\", description: project, args: [services.a.main]}\n",
		"package berth\nproject: \"p\"\n_d: {user: 1000}\nservices: a: _d & {main: \".\"}\nservices: b: services.a\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		// A Loader per input: a CUE context only grows, and one input must
		// not change how the next is read.
		l, err := NewLoader()
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.LoadSource(testDir, map[string][]byte{"berth.cue": src})
		if err != nil {
			checkPositioned(t, err)
			return
		}
		checkLoaded(t, p)
	})
}

// checkPositioned fails unless err is berth's diagnostics and each error
// it holds points into the fuzzed file.
func checkPositioned(t *testing.T, err error) {
	t.Helper()
	var errs []error
	var list *diag.List
	var one *diag.Error
	switch {
	case errors.As(err, &list):
		errs = list.Errors()
		if len(errs) == 0 {
			t.Fatalf("refused with an empty *diag.List")
		}
	case errors.As(err, &one):
		errs = []error{one}
	default:
		t.Fatalf("refused with %T, not *diag.List or *diag.Error: %v", err, err)
	}
	for _, e := range errs {
		var d *diag.Error
		if !errors.As(e, &d) {
			t.Errorf("%T in the list, not a *diag.Error: %v", e, e)
			continue
		}
		if len(d.Pos) == 0 {
			t.Errorf("error without a position: %v", d)
			continue
		}
		for _, p := range d.Pos {
			if p.File != fuzzFile || p.Line < 1 || p.Col < 1 {
				t.Errorf("error %q has position %+v, not in %s", d, p, fuzzFile)
			}
		}
	}
}

// checkLoaded checks what every loaded project promises.
func checkLoaded(t *testing.T, p *Project) {
	t.Helper()
	if !sort.SliceIsSorted(p.Services, func(i, j int) bool { return p.Services[i].Name < p.Services[j].Name }) {
		t.Errorf("services not sorted")
	}
	if len(p.Services) == 0 {
		// Allowed: `services: {}` is a project with nothing to build.
		return
	}
	for _, s := range p.Services {
		if !validName(s.Name) || s.Main == "" || len(s.Platforms) == 0 {
			t.Errorf("service %q loaded with main %q, platforms %v", s.Name, s.Main, s.Platforms)
		}
		if s.Pos.File != fuzzFile || s.Pos.Line < 1 || s.Pos.Col < 1 {
			t.Errorf("service %q at %+v", s.Name, s.Pos)
		}
		for k, pos := range s.Fields {
			if pos.File != fuzzFile || pos.Line < 1 || pos.Col < 1 {
				t.Errorf("service %q field %s at %+v", s.Name, k, pos)
			}
		}
	}
}

// TestFuzzCorpus keeps the committed seeds honest: a valid-* seed loads,
// an invalid-* seed is refused, and both satisfy FuzzLoad's property.
func TestFuzzCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzLoad", "*"))
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, f := range files {
		name := filepath.Base(f)
		valid := strings.HasPrefix(name, "valid-")
		if !valid && !strings.HasPrefix(name, "invalid-") {
			continue // a crasher kept as found
		}
		named++
		t.Run(name, func(t *testing.T) {
			src := readCorpusFile(t, f)
			p, err := newLoader(t).LoadSource(testDir, map[string][]byte{"berth.cue": src})
			switch {
			case valid && err != nil:
				t.Fatalf("valid seed refused: %v", err)
			case !valid && err == nil:
				t.Fatalf("invalid seed loaded with %d services", len(p.Services))
			case err != nil:
				checkPositioned(t, err)
			default:
				checkLoaded(t, p)
			}
		})
	}
	if named < 15 {
		t.Errorf("%d named seeds in testdata/fuzz/FuzzLoad, want at least 15", named)
	}
}

// readCorpusFile reads a one-argument []byte file in the `go test fuzz v1`
// format.
func readCorpusFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a one-value go test fuzz v1 file", path)
	}
	arg, ok := strings.CutPrefix(lines[1], "[]byte(")
	if !ok || !strings.HasSuffix(arg, ")") {
		t.Fatalf("%s: value is not a []byte", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(arg, ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
