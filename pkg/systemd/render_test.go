package systemd

import (
	"reflect"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/plan"
)

func TestRenderGolden(t *testing.T) {
	for _, ex := range examples() {
		t.Run(ex.name, func(t *testing.T) {
			unit, err := Render(ex.t, ex.o)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, ex.name+".service", unit)
			again, err := Render(ex.t, ex.o)
			if err != nil || string(again) != string(unit) {
				t.Fatalf("second render differs (err %v)", err)
			}

			envf, err := RenderEnv(ex.t)
			if err != nil {
				t.Fatal(err)
			}
			path, err := EnvFile(ex.t, ex.o)
			if err != nil {
				t.Fatal(err)
			}
			if (envf == nil) != (path == "") {
				t.Fatalf("RenderEnv gave %d bytes but EnvFile is %q", len(envf), path)
			}
			if envf != nil {
				golden(t, ex.name+".env", envf)
			}
		})
	}
}

// TestRoundTrip: what Parse reads from a rendered unit is exactly the
// directives, and the quoted values decode to the target's arguments and
// variables.
func TestRoundTrip(t *testing.T) {
	for _, ex := range examples() {
		t.Run(ex.name, func(t *testing.T) {
			checkRoundTrip(t, ex.t, ex.o)
		})
	}
}

func checkRoundTrip(t *testing.T, tg plan.Target, o Options) {
	t.Helper()
	unit, err := Render(tg, o)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Directives(tg, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(unit)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, unit)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(Render) = %q\nwant %q", got, want)
	}

	var argv []string
	env := map[string]string{}
	for _, d := range got {
		switch d.Name {
		case "ExecStart":
			if argv, err = unquoteExec(d.Value); err != nil {
				t.Fatalf("ExecStart=%s: %v", d.Value, err)
			}
		case "Environment":
			name, value, err := unquoteEnvironment(d.Value)
			if err != nil {
				t.Fatalf("Environment=%s: %v", d.Value, err)
			}
			env[name] = value
		}
	}
	wantArgv := append([]string{ExecPath(tg, o)}, tg.Args...)
	if !reflect.DeepEqual(argv, wantArgv) {
		t.Errorf("ExecStart decodes to %q, want %q", argv, wantArgv)
	}
	envf, err := RenderEnv(tg)
	if err != nil {
		t.Fatal(err)
	}
	fileEnv, err := decodeEnvFile(string(envf))
	if err != nil {
		t.Fatalf("environment file: %v\n%s", err, envf)
	}
	for k, v := range fileEnv {
		if _, dup := env[k]; dup {
			t.Errorf("%s is both in the unit and in the environment file", k)
		}
		env[k] = v
	}
	wantEnv := map[string]string{}
	for _, e := range tg.Env {
		wantEnv[e.Name] = e.Value
	}
	// Environment overrides come after berth's lines: systemd takes the
	// last value of a variable; an empty one drops berth's lines.
	for _, ov := range o.Overrides {
		if ov.Section != "Service" || ov.Name != "Environment" {
			continue
		}
		if ov.Value == "" {
			for k := range runtimeEnv {
				delete(wantEnv, k)
			}
			continue
		}
		name, value, err := unquoteEnvironment(ov.Value)
		if err != nil {
			t.Fatalf("override Environment=%s: %v", ov.Value, err)
		}
		wantEnv[name] = value
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("environment decodes to %q, want %q", env, wantEnv)
	}
}

func TestQuoteExecArg(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "--listen=:8080", "--listen=:8080"},
		{"empty", "", `""`},
		{"space", "a b", `"a b"`},
		{"double quote", `say "hi"`, `"say \"hi\""`},
		{"single quote", "it's", `"it's"`},
		{"percent bare", "100%", "100%%"},
		{"percent quoted", "a %n", `"a %%n"`},
		{"dollar bare", "$HOME", "$$HOME"},
		{"dollar braces", "${HOME}", `"$${HOME}"`},
		{"backslash", `back\slash`, `"back\\slash"`},
		{"trailing backslash", `dir\`, `"dir\\"`},
		{"semicolon", ";", `";"`},
		{"utf8", "héllo", `"héllo"`},
		{"all at once", `a "b" 'c' \d %e $f`, `"a \"b\" 'c' \\d %%e $$f"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := QuoteExecArg(tc.in)
			if got != tc.want {
				t.Errorf("QuoteExecArg(%q) = %s, want %s", tc.in, got, tc.want)
			}
			words, err := unquoteExec(got)
			if err != nil || len(words) != 1 || words[0] != tc.in {
				t.Errorf("%s decodes to %q (err %v), want [%q]", got, words, err, tc.in)
			}
		})
	}
}

func TestQuoteEnv(t *testing.T) {
	for _, tc := range []struct{ name, value, unit, file string }{
		{"plain", "info", "K=info", "info"},
		{"empty", "", "K=", ""},
		{"space", "two words", `"K=two words"`, `"two words"`},
		{"quotes", `q"uo'te`, `"K=q\"uo'te"`, `"q\"uo'te"`},
		{"percent", "50%", "K=50%%", "50%"},
		{"dollar", "$HOME", "K=$HOME", `"\$HOME"`},
		{"backslash", `a\b`, `"K=a\\b"`, `"a\\b"`},
		{"backtick", "`id`", "\"K=`id`\"", "\"\\`id\\`\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unit, err := quoteEnvironment("K", tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if unit != tc.unit {
				t.Errorf("Environment=%s, want %s", unit, tc.unit)
			}
			if _, v, err := unquoteEnvironment(unit); err != nil || v != tc.value {
				t.Errorf("Environment=%s decodes to %q (err %v)", unit, v, err)
			}
			file := quoteEnvFile(tc.value)
			if file != tc.file {
				t.Errorf("env file value %s, want %s", file, tc.file)
			}
			if m, err := decodeEnvFile("K=" + file + "\n"); err != nil || m["K"] != tc.value {
				t.Errorf("env file K=%s decodes to %q (err %v)", file, m["K"], err)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	base := examples()[0]
	for _, tc := range []struct {
		name      string
		overrides []Directive
		check     func(t *testing.T, ds []Directive)
	}{
		{"replace keeps the place", []Directive{{"Service", "RestartSec", "5s"}}, func(t *testing.T, ds []Directive) {
			want := directiveIndex(t, mustDirectives(t, base.t, Options{}), "Service", "RestartSec")
			if i := directiveIndex(t, ds, "Service", "RestartSec"); i != want || ds[i].Value != "5s" {
				t.Errorf("RestartSec at %d = %q, want at %d = 5s", i, ds[i].Value, want)
			}
		}},
		{"replace all of a name", []Directive{
			{"Service", "SystemCallFilter", "@system-service @resources"},
		}, func(t *testing.T, ds []Directive) {
			if got := values(ds, "Service", "SystemCallFilter"); !reflect.DeepEqual(got, []string{"@system-service @resources"}) {
				t.Errorf("SystemCallFilter = %q", got)
			}
		}},
		{"Environment adds to berth's, after them", []Directive{
			{"Service", "Environment", "TZ=UTC"},
			{"Service", "Environment", "GOMAXPROCS=4"},
		}, func(t *testing.T, ds []Directive) {
			own := values(mustDirectives(t, base.t, Options{}), "Service", "Environment")
			if len(own) == 0 {
				t.Fatal("the example unit has no Environment of berth's")
			}
			want := append(own, "TZ=UTC", "GOMAXPROCS=4")
			if got := values(ds, "Service", "Environment"); !reflect.DeepEqual(got, want) {
				t.Errorf("Environment = %q, want %q (systemd takes the last value of a variable)", got, want)
			}
			first := directiveIndex(t, ds, "Service", "Environment")
			for i, v := range want {
				if d := ds[first+i]; d.Name != "Environment" || d.Value != v {
					t.Errorf("directive %d after the first Environment is %s, want Environment=%s", i, d, v)
				}
			}
		}},
		{"an empty Environment removes berth's", []Directive{{"Service", "Environment", ""}}, func(t *testing.T, ds []Directive) {
			if got := values(ds, "Service", "Environment"); got != nil {
				t.Errorf("Environment = %q, want removed", got)
			}
		}},
		{"remove", []Directive{{"Service", "PrivateUsers", ""}}, func(t *testing.T, ds []Directive) {
			if got := values(ds, "Service", "PrivateUsers"); got != nil {
				t.Errorf("PrivateUsers = %q, want removed", got)
			}
		}},
		{"add to a section", []Directive{
			{"Service", "StateDirectory", "api"},
			{"Service", "ReadWritePaths", "/var/lib/api"},
		}, func(t *testing.T, ds []Directive) {
			n := len(ds)
			if ds[n-3] != (Directive{"Service", "StateDirectory", "api"}) ||
				ds[n-2] != (Directive{"Service", "ReadWritePaths", "/var/lib/api"}) ||
				ds[n-1].Section != "Install" {
				t.Errorf("added directives are not at the end of [Service]: %q", ds[n-3:])
			}
		}},
		{"add a section", []Directive{{"X-Berth", "Owner", "team-a"}}, func(t *testing.T, ds []Directive) {
			if ds[len(ds)-1] != (Directive{"X-Berth", "Owner", "team-a"}) {
				t.Errorf("last directive %q", ds[len(ds)-1])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Project: "shop", Overrides: tc.overrides}
			ds := mustDirectives(t, base.t, o)
			tc.check(t, ds)
			checkRoundTrip(t, base.t, o)
		})
	}
}

func TestRenderErrors(t *testing.T) {
	api := examples()[0].t
	for _, tc := range []struct {
		name   string
		change func(*plan.Target, *Options)
		want   string
	}{
		{"newline in argument", func(t *plan.Target, _ *Options) { t.Args = []string{"a\nExecStartPre=/bin/sh"} }, "control character"},
		{"control in environment", func(t *plan.Target, _ *Options) { t.Env = env("A", "x\ry") }, "control character"},
		{"newline in description", func(t *plan.Target, _ *Options) { t.Description = "a\n[Service]" }, "control character"},
		{"C1 control", func(t *plan.Target, _ *Options) { t.Description = "a\u0085b" }, "control character"},
		{"invalid UTF-8", func(t *plan.Target, _ *Options) { t.Args = []string{"\xff"} }, "UTF-8"},
		{"trailing backslash in description", func(t *plan.Target, _ *Options) { t.Description = `api\` }, "backslash"},
		{"bad environment name", func(t *plan.Target, _ *Options) { t.Env = env("A B", "x") }, "name"},
		{"windows", func(t *plan.Target, _ *Options) { t.GOOS = "windows" }, "linux"},
		{"relative exec path", func(_ *plan.Target, o *Options) { o.ExecPath = "bin/api" }, "absolute"},
		{"override with a newline", func(_ *plan.Target, o *Options) {
			o.Overrides = []Directive{{"Service", "User", "1\nUser=0"}}
		}, "control character"},
		{"override with a bad name", func(_ *plan.Target, o *Options) {
			o.Overrides = []Directive{{"Service", "User=0\nX", "1"}}
		}, "directive name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, o := api, Options{Project: "shop"}
			tc.change(&tg, &o)
			_, err := Render(tg, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ name, unit string }{
		{"no final newline", "[Unit]\nDescription=x"},
		{"outside a section", "Description=x\n"},
		{"continuation", "[Unit]\nDescription=x\\\n"},
		{"leading space", "[Unit]\n Description=x\n"},
		{"space around the value", "[Unit]\nDescription= x\n"},
		{"semicolon comment", "[Unit]\n;comment\n"},
		{"carriage return", "[Unit]\r\nDescription=x\n"},
		{"section twice", "[Unit]\n[Unit]\n"},
		{"not a directive", "[Unit]\nDescription\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ds, err := Parse([]byte(tc.unit)); err == nil {
				t.Fatalf("Parse(%q) = %q, want an error", tc.unit, ds)
			}
		})
	}
}

func mustDirectives(t *testing.T, tg plan.Target, o Options) []Directive {
	t.Helper()
	ds, err := Directives(tg, o)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func directiveIndex(t *testing.T, ds []Directive, section, name string) int {
	t.Helper()
	for i, d := range ds {
		if d.Section == section && d.Name == name {
			return i
		}
	}
	t.Fatalf("no %s= in [%s]", name, section)
	return -1
}

func values(ds []Directive, section, name string) []string {
	var vs []string
	for _, d := range ds {
		if d.Section == section && d.Name == name {
			vs = append(vs, d.Value)
		}
	}
	return vs
}
