package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/diag"
)

// TestLoadErrors checks where mistakes are reported: each error's path
// and main position, and part of its message (the messages themselves are
// pinned by the CLI scripts in pkg/cli/testdata/script).
func TestLoadErrors(t *testing.T) {
	l := newLoader(t)
	type want struct {
		at  string // path @ file:line:col
		msg string // part of the message
	}
	for _, tc := range []struct {
		name    string
		archive string
		want    []want // in the order the list sorts them
		// knownBug marks a case that fails today; it fails once fixed, so
		// the mark is removed.
		knownBug string
	}{
		{
			name: "unknown service field with a suggestion",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {main: "./api", platfroms: ["linux/amd64"]}
`,
			want: []want{{"services.api.platfroms @ berth.cue:3:32", "field not allowed; did you mean platforms?"}},
		},
		{
			name: "a bad value in defaults is reported once, in defaults",
			archive: `-- berth.cue --
package berth
project: "p"
services: {a: main: "./a", b: main: "./b"}
-- defaults.cue --
package berth
defaults: limits: cpu: 0
`,
			want: []want{{"defaults.limits.cpu @ defaults.cue:2:19", "cpu must be a number of cores more than 0"}},
		},
		{
			name: "missing main at the service",
			archive: `-- berth.cue --
package berth
project: "p"
services: api: {description: "x"}
`,
			want: []want{{"services.api.main @ berth.cue:3:11", "field is required but not present"}},
		},
		{
			name: "every mistake in one run, sorted",
			archive: `-- berth.cue --
package berth
project: "P"
services: {
	b: {main: "./b", user: 0}
	a: {main: "/abs"}
}
`,
			want: []want{
				{"project @ berth.cue:2:1", "must start with a lowercase letter"},
				{"services.b.user @ berth.cue:4:19", "uid 0 (root) is refused"},
				{"services.a.main @ berth.cue:5:6", "main must be a package path relative to the module root"},
			},
		},
		{
			name: "a rule of the user's is reported once per branch, at the branch",
			archive: `-- berth.cue --
package berth
project: "p"
services: [_]: limits: memory: "128Mi" | "256Mi"
services: api: {main: "./api", limits: memory: "1Gi"}
`,
			want: []want{
				{"services.api.limits.memory @ berth.cue:3:32", `conflicting values "128Mi" and "1Gi"`},
				{"services.api.limits.memory @ berth.cue:3:42", `conflicting values "256Mi" and "1Gi"`},
			},
		},
		{
			name: "a conflict between the user's own values does not hide other mistakes",
			archive: `-- berth.cue --
package berth
project: "a"
project: "b"
services: a: {main: ".", cpu: 1}
`,
			want: []want{
				{"project @ berth.cue:2:10", "conflicting values"},
				{"services.a.cpu @ berth.cue:4:26", "field not allowed"},
			},
			knownBug: "a conflict is found by BuildInstance and load stops there: the unknown field is not reported",
		},
		{
			name: "a structural cycle is positioned",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", x: services.a}
`,
			want: []want{{"services.a.x @ berth.cue:3:26", ""}},
		},
		{
			name: "an error at a service's root has no trailing dot",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: 5
`,
			want: []want{
				{"services.a.main @ berth.cue:3:11", "field is required"},
				{"services.a @ berth.cue:3:14", ""},
			},
		},
		{
			name: "an import failure keeps its cause",
			archive: `-- berth.cue --
package berth
import "example.com/nope"
project: "p"
services: a: main: nope.x
`,
			want:     []want{{" @ berth.cue:2:8", "no cue.mod/module.cue"}},
			knownBug: `convert keeps only e.Msg() of the wrapping error: "import failed", without its cause`,
		},
		{
			name: "one error per mistake",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", limits: memory: "1.5Gi"}
`,
			want: []want{{"services.a.limits.memory @ berth.cue:3:34", "memory must be a size"}},
		},
		{
			name: "a service with no platform is refused",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", platforms: []}
`,
			want: []want{{"services.a.platforms @ berth.cue:3:26", "a service needs at least one platform"}},
		},
		{
			name: "a port listed twice is refused; 8080 is 8080/tcp",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", ports: [8080, "8080/tcp"]}
services: b: {main: ".", ports: [53, "53/udp", 443]}
`,
			want: []want{{"services.a.ports @ berth.cue:3:26", "a port is listed twice"}},
		},
		{
			// CUE counts beyond int64; berth, systemd and Go's GOMEMLIMIT
			// do not: such a size would leave the service without a limit.
			name: "a size beyond int64 is refused, not dropped",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", limits: memory: "10000000Ti"}
services: b: {main: ".", limits: memory: 99999999999999999999}
services: c: {main: ".", runtime: gomemlimit: "99999999TiB"}
services: d: {main: ".", limits: memory: "8000000Ti"}
`,
			want: []want{
				{"services.a.limits.memory @ berth.cue:3:34", "10000000Ti is more than berth and Go can count"},
				{"services.b.limits.memory @ berth.cue:4:34", "99999999999999999999 is more than"},
				{"services.c.runtime.gomemlimit @ berth.cue:5:35", "99999999TiB is more than"},
			},
		},
		{
			name: "go.flags that berth sets itself are refused at the flag",
			archive: `-- berth.cue --
package berth
project: "p"
go: flags: ["-v", "-o=bin/x", "--trimpath=false",
	"-tags=a;b", "-tags=netgo,osusergo", "-ldflags=-X main.x=1"]
services: a: main: "."
`,
			want: []want{
				{"go.flags.1 @ berth.cue:3:19", "berth names each target's output itself"},
				{"go.flags.2 @ berth.cue:3:31", "berth always builds with -trimpath"},
				{"go.flags.3 @ berth.cue:4:2", "a build tag holds only letters"},
			},
		},
		{
			// What validates renders: the unit and Dockerfile writers refuse
			// C1 controls (U+0080-U+009F) and values systemd would not read
			// back as written, so the schema does, at the field.
			name: "what the units and Dockerfiles cannot hold is refused at its field",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", args: ["x\u0085y"], description: "ends\\"}
services: b: {main: ".", systemd: Service: {ProtectHome: " yes", ReadWritePaths: "/var/lib/b\\"}}
services: c: {main: ".", env: X: "\u009f", systemd: Service: StateDirectory: "c\u00a0"}
`,
			want: []want{
				{"services.a.args.0 @ berth.cue:3:33", "an argument must not contain a newline or control character"},
				{"services.a.description @ berth.cue:3:46", "not ending in a backslash"},
				{"services.b.systemd.Service.ProtectHome @ berth.cue:4:45", "not starting or ending with a blank"},
				{"services.b.systemd.Service.ReadWritePaths @ berth.cue:4:66", "not ending in a backslash"},
				{"services.c.env.X @ berth.cue:5:31", "an environment value must not contain a newline or control character"},
			},
		},
		{
			// An open list is a rule on the list berth would pick (its
			// default, linux/amd64), not a value of its own.
			name: "an open list of platforms constrains the default one",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", platforms: [..."linux/arm64"]}
`,
			want: []want{{"services.a.platforms.0 @ berth.cue:3:41", `conflicting values "linux/arm64" and "linux/amd64"`}},
		},
		{
			name: "a platform listed twice is refused, once",
			archive: `-- berth.cue --
package berth
project: "p"
services: a: {main: ".", platforms: ["linux/amd64", "linux/arm64", "linux/amd64", "linux/arm64"]}
`,
			want: []want{{"services.a.platforms @ berth.cue:3:26", "a platform is listed twice"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var msgs []string
			_, err := loadTxtar(t, l, tc.archive)
			var list *diag.List
			switch {
			case err == nil:
				got = []string{"loaded without error"}
			case !errors.As(err, &list):
				got = []string{fmt.Sprintf("%T, not a *diag.List: %v", err, err)}
			default:
				for _, e := range list.Errors() {
					var d *diag.Error
					if !errors.As(e, &d) || len(d.Pos) == 0 {
						got = append(got, "unpositioned: "+e.Error())
						msgs = append(msgs, "")
						continue
					}
					got = append(got, fmt.Sprintf("%s @ %s", d.Path, strings.TrimPrefix(d.Pos[0].Rel(testDir).String(), "./")))
					msgs = append(msgs, d.Msg)
				}
			}
			var wantAt []string
			for _, w := range tc.want {
				wantAt = append(wantAt, w.at)
			}
			problem := ""
			if strings.Join(got, "\n") != strings.Join(wantAt, "\n") {
				problem = fmt.Sprintf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantAt, "\n"))
			} else {
				for i, w := range tc.want {
					if !strings.Contains(msgs[i], w.msg) {
						problem += fmt.Sprintf("%s: message %q does not say %q\n", got[i], msgs[i], w.msg)
					}
				}
			}
			switch {
			case tc.knownBug != "" && problem == "":
				t.Errorf("the bug %q is fixed: drop its knownBug mark", tc.knownBug)
			case tc.knownBug != "":
				t.Logf("known bug: %s\n%s", tc.knownBug, problem)
			case problem != "":
				t.Error(problem)
			}
		})
	}
}
