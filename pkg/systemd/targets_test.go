package systemd

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// example is a target with the options it is rendered with; name is its
// golden file's base name.
type example struct {
	name string
	t    plan.Target
	o    Options
}

// examples mirror examples/monorepo (api, worker, gateway, admin as the
// planner resolves them for linux/amd64), plus a service with a declared
// user and no limits, and one whose arguments and environment need every
// kind of quoting.
func examples() []example {
	shop := Options{Project: "shop"}
	return []example{
		{"api", target("api", "Shop HTTP API", 20,
			[]string{"--listen=:8080"}, []string{"8080/tcp"},
			plan.Limits{CPU: 1.5, Memory: 268435456, NoFile: 65536, Tasks: 512},
			env("GOMAXPROCS", "2", "GOMEMLIMIT", "230MiB", "LOG_LEVEL", "info")), shop},
		{"worker", target("worker", "Background jobs", 27,
			nil, nil,
			plan.Limits{CPU: 1, Memory: 134217728, NoFile: 4096, Tasks: 64},
			env("GOMAXPROCS", "1", "GOMEMLIMIT", "115MiB", "LOG_LEVEL", "debug", "QUEUE", "orders")), shop},
		{"gateway", target("gateway", "Edge gateway", 33,
			nil, []string{"443/tcp", "8443/udp"},
			plan.Limits{CPU: 1, Memory: 67108864, NoFile: 4096, Tasks: 64},
			env("GOMAXPROCS", "1", "GOMEMLIMIT", "57MiB", "LOG_LEVEL", "info")), shop},
		{"admin", target("admin", "Admin console", 39,
			nil, nil,
			plan.Limits{CPU: 1, Memory: 134217728, NoFile: 4096, Tasks: 64},
			env("GOMAXPROCS", "1", "GOMEMLIMIT", "115MiB", "LOG_LEVEL", "info")), shop},
		{"declared-user", withUser(target("declared-user", "", 50,
			nil, []string{"9000/tcp"}, plan.Limits{}, nil), 1000, 1001), Options{}},
		{"quoting", target("quoting", "100% \"quoted\" $HOME \\ description", 60,
			[]string{"a b", "it's", `say "hi"`, "100%", "$HOME", "${HOME}", `back\slash`, ";", "", "héllo", "%n", "-x=1,2"},
			[]string{"8080/tcp"}, plan.Limits{CPU: 0.3333, Memory: 1000},
			env("GOMAXPROCS", `"2" 50% \`, "GOMEMLIMIT", "900B", "A", "", "B", "two words", "C", `q"uo'te`, "D", `$HOME \ %n`, "E", "`id`")),
			Options{Project: "shop", ExecPath: "/opt/shop/bin/quoting"}},
	}
}

func target(name, desc string, line int, args, ports []string, l plan.Limits, e []plan.EnvVar) plan.Target {
	if args == nil {
		args = []string{}
	}
	if ports == nil {
		ports = []string{}
	}
	if e == nil {
		e = []plan.EnvVar{}
	}
	if desc == "" {
		desc = name
	}
	pos := diag.Pos{File: "./berth.cue", Line: line, Col: 2}
	return plan.Target{
		Service: name, Platform: "linux/amd64", GOOS: "linux", GOARCH: "amd64",
		Main: "./cmd/" + name, BinaryName: name, Base: "static",
		User: NonrootID, Group: NonrootID,
		Description: desc, Args: args, Env: e, Ports: ports, Limits: l,
		Outputs: plan.Outputs{Binary: true, Systemd: true},
		Source:  diag.Range{Start: pos, End: diag.Pos{File: pos.File, Line: line + 5, Col: 3}},
	}
}

func withUser(t plan.Target, uid, gid int) plan.Target {
	t.User, t.Group = uid, gid
	return t
}

func env(kv ...string) []plan.EnvVar {
	var e []plan.EnvVar
	for i := 0; i < len(kv); i += 2 {
		e = append(e, plan.EnvVar{Name: kv[i], Value: kv[i+1]})
	}
	return e
}

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output (run go test -update and read the diff):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}
