package systemd

import (
	"testing"

	"github.com/berthbuild/berth/pkg/plan"
)

// FuzzRender: for any description, arguments and environment, Render
// either fails or writes a unit that Parse reads back as exactly the
// directives (no value added, split or changed a line), whose ExecStart=
// and Environment= decode to the target's arguments and variables, and
// whose environment file decodes to the rest. Seeds are in
// testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	f.Fuzz(func(t *testing.T, desc, arg1, arg2, name, value, gomemlimit string) {
		tg := examples()[0].t
		tg.Description = desc
		tg.Args = []string{arg1, arg2}
		tg.Env = []plan.EnvVar{{Name: name, Value: value}}
		if name != "GOMEMLIMIT" {
			tg.Env = append(tg.Env, plan.EnvVar{Name: "GOMEMLIMIT", Value: gomemlimit})
		}
		o := Options{Project: "shop"}
		if _, err := Render(tg, o); err != nil {
			return
		}
		checkRoundTrip(t, tg, o)
	})
}
