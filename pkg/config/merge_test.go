package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/diag"
)

func TestLoadDefaults(t *testing.T) {
	l := newLoader(t)
	for _, tc := range []struct {
		name    string
		archive string
		service string
		check   serviceCheck
		// knownBug marks a case whose check fails today; it fails once
		// the check passes, so the mark is removed.
		knownBug string
	}{
		{
			name: "struct fields merge field by field",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: limits: {cpu: 1, nofile: 4096}
services: api: {main: "./api", limits: {memory: "256Mi", nofile: 10}}
`,
			service: "api",
			check: func(s *Service) string {
				want := Limits{CPU: 1, Memory: 256 << 20, MemoryText: "256Mi", NoFile: 10}
				if s.Limits != want {
					return fmt.Sprintf("limits %+v, want %+v", s.Limits, want)
				}
				return ""
			},
		},
		{
			name: "runtime merges field by field",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: runtime: gomaxprocs: 2
services: api: {main: "./api", runtime: gomemlimit: "100MiB"}
`,
			service: "api",
			check: func(s *Service) string {
				want := Runtime{GOMAXPROCS: 2, GOMEMLIMIT: 100 << 20, GOMEMLIMITText: "100MiB"}
				if s.Runtime != want {
					return fmt.Sprintf("runtime %+v, want %+v", s.Runtime, want)
				}
				return ""
			},
		},
		{
			name: "env merges by name, the service's value wins",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: env: {A: "1", B: "2"}
services: api: {main: "./api", env: {C: "4", B: "3"}}
`,
			service: "api",
			check: func(s *Service) string {
				want := []EnvVar{{"A", "1"}, {"B", "3"}, {"C", "4"}}
				if !reflect.DeepEqual(s.Env, want) {
					return fmt.Sprintf("env %+v, want %+v", s.Env, want)
				}
				return ""
			},
		},
		{
			name: "lists are replaced whole",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: {
	platforms: ["linux/amd64", "linux/arm64"]
	args: ["--a", "--b"]
	ports: [80, 443]
}
services: api: {main: "./api", platforms: ["linux/arm/v7"], args: ["--c"], ports: ["53/udp"]}
`,
			service: "api",
			check: func(s *Service) string {
				if want := []Platform{{"linux", "arm", "v7"}}; !reflect.DeepEqual(s.Platforms, want) {
					return fmt.Sprintf("platforms %+v, want %+v", s.Platforms, want)
				}
				if want := []string{"--c"}; !reflect.DeepEqual(s.Args, want) {
					return fmt.Sprintf("args %q, want %q", s.Args, want)
				}
				if want := []Port{{53, "udp"}}; !reflect.DeepEqual(s.Ports, want) {
					return fmt.Sprintf("ports %+v, want %+v", s.Ports, want)
				}
				return ""
			},
		},
		{
			name: "lists inherited whole when the service has none",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: {platforms: ["linux/arm64", "linux/amd64"], args: ["--a"], ports: [8080, "9000/udp"]}
services: api: main: "./api"
`,
			service: "api",
			check: func(s *Service) string {
				if want := []Platform{{"linux", "arm64", ""}, {"linux", "amd64", ""}}; !reflect.DeepEqual(s.Platforms, want) {
					return fmt.Sprintf("platforms %+v, want %+v (in declared order)", s.Platforms, want)
				}
				if want := []Port{{8080, "tcp"}, {9000, "udp"}}; !reflect.DeepEqual(s.Ports, want) || len(s.Args) != 1 {
					return fmt.Sprintf("ports %+v, args %q", s.Ports, s.Args)
				}
				return ""
			},
		},
		{
			name: "a rule's open list constrains the inherited list, it does not replace it",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: {platforms: ["linux/arm64"], args: ["--verbose"], ports: [8080]}
services: api: main: "./api"
services: web: {main: "./web", args: ["--listen=:80"]}
services: [_]: {args: [...=~"^--"], ports: [...int], platforms: [...string]}
`,
			service: "api",
			check: func(s *Service) string {
				if want := []Platform{{"linux", "arm64", ""}}; !reflect.DeepEqual(s.Platforms, want) {
					return fmt.Sprintf("platforms %+v, want %+v", s.Platforms, want)
				}
				if want := []string{"--verbose"}; !reflect.DeepEqual(s.Args, want) {
					return fmt.Sprintf("args %q, want %q", s.Args, want)
				}
				if want := []Port{{8080, "tcp"}}; !reflect.DeepEqual(s.Ports, want) {
					return fmt.Sprintf("ports %+v, want %+v", s.Ports, want)
				}
				// Declared on line 4; the rule on line 6 is not where api is.
				if s.Pos != at("berth.cue", 4, 11) || s.Range.Start != s.Pos {
					return fmt.Sprintf("api at %v (range %v), want berth.cue:4:11", s.Pos, s.Range)
				}
				if got := s.Fields["args"]; got.Line != 3 {
					return fmt.Sprintf("args from %v, want the defaults' line 3", got)
				}
				return ""
			},
		},
		{
			name: "the service's scalars win",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: {base: "scratch", description: "from defaults", user: 1000, group: 1000}
services: api: {main: "./api", base: "static", description: "mine", user: 2000}
`,
			service: "api",
			check: func(s *Service) string {
				if s.Base != "static" || s.Description != "mine" || s.User != 2000 || s.Group != 1000 {
					return fmt.Sprintf("base %q, description %q, user %d, group %d", s.Base, s.Description, s.User, s.Group)
				}
				return ""
			},
		},
		{
			name: "built-in defaults",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: main: "./api"
`,
			service: "api",
			check: func(s *Service) string {
				if !reflect.DeepEqual(s.Platforms, []Platform{{"linux", "amd64", ""}}) || s.Base != "static" || s.CGO || s.AllowRoot {
					return fmt.Sprintf("platforms %+v, base %q, cgo %v, allowRoot %v", s.Platforms, s.Base, s.CGO, s.AllowRoot)
				}
				if s.User != 65532 || s.Group != 65532 {
					return fmt.Sprintf("user %d, group %d, want 65532", s.User, s.Group)
				}
				return ""
			},
		},
		{
			name: "group defaults to user",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {main: "./api", user: 1000}
`,
			service: "api",
			check: func(s *Service) string {
				if s.User != 1000 || s.Group != 1000 {
					return fmt.Sprintf("user %d, group %d", s.User, s.Group)
				}
				return ""
			},
		},
		{
			name: "group defaults to the user from defaults",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: user: 1500
services: api: main: "./api"
`,
			service: "api",
			check: func(s *Service) string {
				if s.User != 1500 || s.Group != 1500 {
					return fmt.Sprintf("user %d, group %d", s.User, s.Group)
				}
				return ""
			},
		},
		{
			name: "explicit group",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {main: "./api", user: 1000, group: 2000}
`,
			service: "api",
			check: func(s *Service) string {
				if s.User != 1000 || s.Group != 2000 {
					return fmt.Sprintf("user %d, group %d", s.User, s.Group)
				}
				return ""
			},
		},
		{
			name: "explicit root group with allowRoot",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {main: "./api", user: 1000, group: 0, allowRoot: true}
`,
			service: "api",
			check: func(s *Service) string {
				if s.Group != 0 || !s.AllowRoot {
					return fmt.Sprintf("group %d, allowRoot %v", s.Group, s.AllowRoot)
				}
				return ""
			},
		},
		{
			name: "outputs all on when every platform is linux",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {main: "./api", platforms: ["linux/amd64", "linux/arm/v6"]}
`,
			service: "api",
			check: func(s *Service) string {
				if want := (Outputs{Image: true, Binary: true, Systemd: true, Dockerfile: true}); s.Outputs != want {
					return fmt.Sprintf("outputs %+v, want %+v", s.Outputs, want)
				}
				return ""
			},
		},
		{
			name: "outputs but binary off with a windows platform",
			archive: `-- berth.cue --
package berth
project: "p"
services: cli: {main: "./cli", platforms: ["linux/amd64", "windows/amd64"]}
`,
			service: "cli",
			check: func(s *Service) string {
				if want := (Outputs{Binary: true}); s.Outputs != want {
					return fmt.Sprintf("outputs %+v, want %+v", s.Outputs, want)
				}
				return ""
			},
		},
		{
			name: "outputs off with a darwin platform inherited from defaults",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: platforms: ["darwin/arm64"]
services: cli: main: "./cli"
`,
			service: "cli",
			check: func(s *Service) string {
				if want := (Outputs{Binary: true}); s.Outputs != want {
					return fmt.Sprintf("outputs %+v, want %+v", s.Outputs, want)
				}
				return ""
			},
		},
		{
			name: "outputs from defaults and the service merge",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: outputs: {image: false, binary: false}
services: api: {main: "./api", outputs: {systemd: false, binary: true}}
`,
			service: "api",
			check: func(s *Service) string {
				if want := (Outputs{Binary: true, Dockerfile: true}); s.Outputs != want {
					return fmt.Sprintf("outputs %+v, want %+v", s.Outputs, want)
				}
				return ""
			},
		},
		{
			name: "systemd sections merge with defaults",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: systemd: {Unit: After: "network.target", Service: ProtectHome: "read-only"}
services: api: {main: "./api", systemd: Install: WantedBy: "default.target"}
`,
			service: "api",
			check: func(s *Service) string {
				want := []Directive{
					{"Install", "WantedBy", "default.target"},
					{"Service", "ProtectHome", "read-only"},
					{"Unit", "After", "network.target"},
				}
				if !reflect.DeepEqual(s.Systemd, want) {
					return fmt.Sprintf("systemd %+v, want %+v", s.Systemd, want)
				}
				return ""
			},
		},
		{
			name: "systemd directives of one section merge with defaults",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: systemd: Service: {ProtectHome: "read-only", Nice: "5"}
services: api: {main: "./api", systemd: Service: Nice: "10"}
`,
			service: "api",
			check: func(s *Service) string {
				want := []Directive{{"Service", "Nice", "10"}, {"Service", "ProtectHome", "read-only"}}
				if !reflect.DeepEqual(s.Systemd, want) {
					return fmt.Sprintf("systemd %+v, want %+v", s.Systemd, want)
				}
				return ""
			},
		},
		{
			name: "a CUE default in the service wins over the built-in defaults",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {
	main: "./api"
	base: *"scratch" | "static"
	platforms: *["linux/arm64"] | ["linux/amd64"]
}
`,
			service: "api",
			check: func(s *Service) string {
				if s.Base != "scratch" || !reflect.DeepEqual(s.Platforms, []Platform{{"linux", "arm64", ""}}) {
					return fmt.Sprintf("base %q, platforms %v; want the service's defaults scratch and linux/arm64", s.Base, s.Platforms)
				}
				return ""
			},
		},
		{
			name: "a CUE default for user in the service",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {main: "./api", user: *1000 | 2000}
`,
			service: "api",
			check: func(s *Service) string {
				if s.User != 1000 {
					return fmt.Sprintf("user %d, want 1000", s.User)
				}
				return ""
			},
		},
		{
			name: "a CUE default in defaults",
			archive: `-- berth.cue --
package berth
project: "p"
defaults: base: *"scratch" | "static"
services: api: main: "./api"
`,
			service: "api",
			check: func(s *Service) string {
				if s.Base != "scratch" {
					return fmt.Sprintf("base %q, want scratch", s.Base)
				}
				return ""
			},
		},
		{
			name: "defaults in another file",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: main: "./api"
-- defaults.cue --
package berth
defaults: {base: "scratch", limits: cpu: 2}
`,
			service: "api",
			check: func(s *Service) string {
				if s.Base != "scratch" || s.Limits.CPU != 2 {
					return fmt.Sprintf("base %q, cpu %v", s.Base, s.Limits.CPU)
				}
				return ""
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msg string
			p, err := loadTxtar(t, l, tc.archive)
			switch {
			case err != nil:
				var b strings.Builder
				diag.Print(&b, err, testDir)
				msg = "load:\n" + b.String()
			case p.Service(tc.service) == nil:
				msg = "no service " + tc.service
			default:
				msg = tc.check(p.Service(tc.service))
			}
			switch {
			case tc.knownBug != "" && msg == "":
				t.Errorf("the bug %q is fixed: drop its knownBug mark", tc.knownBug)
			case tc.knownBug != "":
				t.Logf("known bug: %s (%s)", tc.knownBug, msg)
			case msg != "":
				t.Error(msg)
			}
		})
	}
}

func TestLoadServicesSorted(t *testing.T) {
	p := mustLoad(t, newLoader(t), `-- berth.cue --
package berth
project: "p"
services: {
	zeta: main: "./z"
	alpha: main: "./a"
	"m-1": main: "./m"
}
-- more.cue --
package berth
services: beta: main: "./b"
`)
	var names []string
	for _, s := range p.Services {
		names = append(names, s.Name)
	}
	if want := []string{"alpha", "beta", "m-1", "zeta"}; !reflect.DeepEqual(names, want) {
		t.Errorf("services %q, want %q", names, want)
	}
	if want := []string{filepath.Join(testDir, "berth.cue"), filepath.Join(testDir, "more.cue")}; !reflect.DeepEqual(p.Files, want) {
		t.Errorf("files %q, want %q", p.Files, want)
	}
	if p.Targets() != 4 || p.Service("nope") != nil {
		t.Errorf("targets %d, Service(nope) %v", p.Targets(), p.Service("nope"))
	}
}

// at is a position in testDir.
func at(file string, line, col int) diag.Pos {
	return diag.Pos{File: filepath.Join(testDir, file), Line: line, Col: col}
}
