package plan_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/config"
	"github.com/berthbuild/berth/pkg/plan"
)

func TestJSON(t *testing.T) {
	pl, err := plan.New(project(), inputs())
	if err != nil {
		t.Fatal(err)
	}
	pl.Targets[0].Description = "<b>&</b>"
	b, err := plan.JSON(pl)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("keys sorted at every level", func(t *testing.T) {
		objects, err := checkSortedKeys(json.NewDecoder(bytes.NewReader(b)))
		if err != nil {
			t.Fatal(err)
		}
		// One plan, its module and go, and per target: itself, limits,
		// outputs, paths, source with start and end, each env var, label
		// and systemd directive.
		want := 3
		for _, tg := range pl.Targets {
			want += 7 + len(tg.Env) + len(tg.Labels) + len(tg.Systemd)
		}
		if objects != want {
			t.Errorf("walked %d objects, want %d", objects, want)
		}
	})
	t.Run("the walker catches unsorted keys", func(t *testing.T) {
		for _, bad := range []string{`{"b": 1, "a": 2}`, `{"a": [{"y": 1, "x": 2}]}`, `[{"a": {"k": {}, "j": 1}}]`, `{"a": 1, "a": 2}`} {
			if _, err := checkSortedKeys(json.NewDecoder(strings.NewReader(bad))); err == nil {
				t.Errorf("%s: no error", bad)
			}
		}
	})
	t.Run("two-space indent and a final newline", func(t *testing.T) {
		lines := strings.Split(string(b), "\n")
		if lines[0] != "{" || !strings.HasPrefix(lines[1], `  "`) || lines[len(lines)-1] != "" || lines[len(lines)-2] != "}" {
			t.Errorf("unexpected layout:\n%s", b)
		}
		for _, l := range lines {
			trimmed := strings.TrimLeft(l, " ")
			if n := len(l) - len(trimmed); n%2 != 0 || strings.HasPrefix(trimmed, "\t") {
				t.Errorf("line %q is not indented by a multiple of two spaces", l)
			}
		}
	})
	t.Run("HTML is not escaped", func(t *testing.T) {
		if !bytes.Contains(b, []byte(`"description": "<b>&</b>"`)) {
			t.Errorf("description escaped or missing:\n%s", b)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		var back plan.Plan
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&back, pl) {
			t.Errorf("decoded plan differs:\n%+v\nwant\n%+v", back, *pl)
		}
	})
	t.Run("empty lists are [] not null", func(t *testing.T) {
		p := project()
		p.Go.Flags, p.Go.Tags = nil, nil
		p.Services[1].Args, p.Services[1].Env, p.Services[1].Ports = nil, nil, nil
		p.Services[1].Limits = config.Limits{}
		pl, err := plan.New(p, inputs())
		if err != nil {
			t.Fatal(err)
		}
		b, err := plan.JSON(pl)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("null")) {
			t.Errorf("plan holds null:\n%s", b)
		}
	})
}

// checkSortedKeys walks a JSON value token by token and fails on an object
// whose keys are not in strictly increasing order. It returns the number
// of objects seen.
func checkSortedKeys(d *json.Decoder) (int, error) {
	type frame struct {
		object  bool
		wantKey bool
		last    string
		path    string
	}
	var stack []*frame
	objects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if len(stack) != 0 {
				return objects, fmt.Errorf("unexpected end inside %s", stack[len(stack)-1].path)
			}
			return objects, nil
		}
		if err != nil {
			return objects, err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if delim, ok := tok.(json.Delim); ok && delim == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key := tok.(string)
			if top.last != "" && key <= top.last {
				return objects, fmt.Errorf("in %s, key %q after %q", top.path, key, top.last)
			}
			top.last, top.wantKey = key, false
			continue
		}
		if top != nil && top.object {
			top.wantKey = true // this token is the value of the last key
		}
		path := "$"
		if top != nil {
			path = top.path + "." + top.last
		}
		switch tok {
		case json.Delim('{'):
			objects++
			stack = append(stack, &frame{object: true, wantKey: true, path: path})
		case json.Delim('['):
			stack = append(stack, &frame{path: path + "[]"})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}
