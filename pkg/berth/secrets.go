package berth

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthbuild/berth/pkg/config"
)

// readSecrets reads the value of every secret the plan's services declare,
// from berth's environment or a file (relative to the config directory).
// A name used twice must name the same source. Values stay in memory and
// reach BuildKit only through the session, for secret mounts.
func readSecrets(p *Project, env Env) (map[string][]byte, error) {
	values := map[string][]byte{}
	from := map[string]config.Secret{}
	for _, t := range p.Plan.Targets {
		for _, s := range t.Secrets {
			if prev, ok := from[s.Name]; ok {
				if prev != s {
					return nil, fmt.Errorf("secret %s: services declare it from different sources (%+v and %+v)", s.Name, prev, s)
				}
				continue
			}
			from[s.Name] = s
			switch {
			case s.Env != "":
				v, ok := lookupEnv(env, s.Env)
				if !ok {
					return nil, fmt.Errorf("secret %s of service %s: environment variable %s is not set", s.Name, t.Service, s.Env)
				}
				values[s.Name] = []byte(v)
			default:
				path := s.File
				if !filepath.IsAbs(path) {
					path = filepath.Join(p.Config.Dir, path)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("secret %s of service %s: %w", s.Name, t.Service, err)
				}
				values[s.Name] = b
			}
		}
	}
	return values, nil
}

func lookupEnv(env Env, k string) (string, bool) {
	if env == nil {
		return os.LookupEnv(k)
	}
	v := env(k)
	return v, v != ""
}
