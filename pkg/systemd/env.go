package systemd

import (
	"bytes"
	"fmt"

	"github.com/berthbuild/berth/pkg/plan"
)

// EnvFile is the path of t's environment file, /etc/<project>/<service>.env,
// or "" when the unit has none (t has no variables besides GOMAXPROCS and
// GOMEMLIMIT).
func EnvFile(t plan.Target, o Options) (string, error) {
	if len(ownEnv(t)) == 0 {
		return "", nil
	}
	return envFile(t, o)
}

// RenderEnv renders t's environment file: one NAME=value line per variable
// of the service's own, in the order of t.Env (sorted by the planner). It
// returns nil when there are none, and no file is needed.
func RenderEnv(t plan.Target) ([]byte, error) {
	env := ownEnv(t)
	if len(env) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	for _, h := range header(t) {
		if err := checkText("header", h); err != nil {
			return nil, err
		}
		b.WriteString("# " + h + "\n")
	}
	for _, e := range env {
		if err := checkEnv(e); err != nil {
			return nil, fmt.Errorf("environment file for %s: %w", t.Service, err)
		}
		b.WriteString(e.Name + "=" + quoteEnvFile(e.Value) + "\n")
	}
	return b.Bytes(), nil
}

// ownEnv are the variables that go to the environment file.
func ownEnv(t plan.Target) []plan.EnvVar {
	var env []plan.EnvVar
	for _, e := range t.Env {
		if !runtimeEnv[e.Name] {
			env = append(env, e)
		}
	}
	return env
}
