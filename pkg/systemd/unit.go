package systemd

import (
	"bytes"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/berthbuild/berth/pkg/plan"
)

// Directive is one line of a unit: Name=Value in [Section]. Value is
// written as is: quoting is done when the directive is made.
type Directive struct {
	Section string
	Name    string
	Value   string
}

func (d Directive) String() string { return "[" + d.Section + "] " + d.Name + "=" + d.Value }

// Options change what Render produces.
type Options struct {
	// Project is the project name: the environment file is
	// /etc/<Project>/<service>.env, or /etc/<service>/<service>.env when
	// Project is empty.
	Project string
	// ExecPath is the absolute path the binary is installed at; default
	// DefaultBinDir/<binary>.
	ExecPath string
	// Overrides are applied in order after the unit is built. The
	// overrides of one section and name replace every directive of that
	// section and name, at the place of the first one (at the end of the
	// section, or in a new section at the end, when there is none); an
	// override with an empty value only removes them. Environment and
	// EnvironmentFile overrides are added after berth's (see adds) unless
	// one of them is empty. Values are written as given, so they must
	// already be quoted for systemd.
	Overrides []Directive
}

const (
	// DefaultBinDir is where binaries are installed by default.
	DefaultBinDir = "/usr/local/bin"
	// NonrootID is the default uid and gid; a service running as it gets
	// DynamicUser=yes.
	NonrootID = 65532
)

// runtimeEnv are the variables written as Environment= in the unit: they
// are derived from the limits the unit also sets. Every other variable of
// the target goes to the environment file.
var runtimeEnv = map[string]bool{"GOMAXPROCS": true, "GOMEMLIMIT": true}

// Render renders the unit of t.
func Render(t plan.Target, o Options) ([]byte, error) {
	ds, err := Directives(t, o)
	if err != nil {
		return nil, err
	}
	return serialize(header(t), ds)
}

// Directives are the directives of t's unit, in order, after the
// overrides: what Parse returns for the output of Render.
func Directives(t plan.Target, o Options) ([]Directive, error) {
	if t.GOOS != "linux" {
		return nil, fmt.Errorf("systemd unit for %s %s: units are for linux targets only", t.Service, t.Platform)
	}
	ds, err := build(t, o)
	if err != nil {
		return nil, fmt.Errorf("systemd unit for %s: %w", t.Service, err)
	}
	ds, err = override(ds, o.Overrides)
	if err != nil {
		return nil, fmt.Errorf("systemd unit for %s: %w", t.Service, err)
	}
	for _, d := range ds {
		if err := checkDirective(d); err != nil {
			return nil, fmt.Errorf("systemd unit for %s: %w", t.Service, err)
		}
	}
	return ds, nil
}

// ExecPath is where the unit expects the binary.
func ExecPath(t plan.Target, o Options) string {
	if o.ExecPath != "" {
		return o.ExecPath
	}
	return path.Join(DefaultBinDir, t.BinaryName)
}

func build(t plan.Target, o Options) ([]Directive, error) {
	var ds []Directive
	add := func(section, name, value string) {
		ds = append(ds, Directive{section, name, value})
	}

	desc := strings.TrimSpace(t.Description)
	if desc == "" {
		desc = t.Service
	}
	if err := checkText("description", desc); err != nil {
		return nil, err
	}
	add("Unit", "Description", escapeSpecifiers(desc))
	add("Unit", "After", "network-online.target")
	add("Unit", "Wants", "network-online.target")

	add("Service", "Type", "exec")
	exec, err := execStart(ExecPath(t, o), t.Args)
	if err != nil {
		return nil, err
	}
	add("Service", "ExecStart", exec)
	if t.User == NonrootID && t.Group == NonrootID {
		add("Service", "DynamicUser", "yes")
	} else {
		if t.User < 0 || t.Group < 0 {
			return nil, fmt.Errorf("negative user %d or group %d", t.User, t.Group)
		}
		add("Service", "User", strconv.Itoa(t.User))
		add("Service", "Group", strconv.Itoa(t.Group))
	}
	add("Service", "Restart", "on-failure")
	add("Service", "RestartSec", "2s")

	for _, e := range t.Env {
		if err := checkEnv(e); err != nil {
			return nil, err
		}
		if !runtimeEnv[e.Name] {
			continue
		}
		v, err := quoteEnvironment(e.Name, e.Value)
		if err != nil {
			return nil, err
		}
		add("Service", "Environment", v)
	}
	if len(ownEnv(t)) > 0 {
		f, err := envFile(t, o)
		if err != nil {
			return nil, err
		}
		add("Service", "EnvironmentFile", escapeSpecifiers(f))
	}

	l := t.Limits
	if l.CPU < 0 || l.Memory < 0 || l.NoFile < 0 || l.Tasks < 0 || math.IsNaN(l.CPU) || math.IsInf(l.CPU, 0) {
		return nil, fmt.Errorf("invalid limits %+v", l)
	}
	if l.CPU > 0 {
		add("Service", "CPUQuota", cpuQuota(l.CPU))
	}
	if l.Memory > 0 {
		add("Service", "MemoryMax", strconv.FormatInt(l.Memory, 10))
		add("Service", "MemoryHigh", strconv.FormatInt(ninetyPercent(l.Memory), 10))
	}
	if l.NoFile > 0 {
		add("Service", "LimitNOFILE", strconv.FormatInt(l.NoFile, 10))
	}
	if l.Tasks > 0 {
		add("Service", "TasksMax", strconv.FormatInt(l.Tasks, 10))
	}

	low, err := lowPort(t.Ports)
	if err != nil {
		return nil, err
	}
	for _, h := range hardening(low) {
		add("Service", h[0], h[1])
	}

	add("Install", "WantedBy", "multi-user.target")
	return ds, nil
}

// hardening is the sandbox every unit gets. lowPort keeps the one
// capability binding a port below 1024 needs.
func hardening(lowPort bool) [][2]string {
	h := [][2]string{
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"PrivateMounts", "yes"},
	}
	if !lowPort {
		h = append(h, [2]string{"PrivateUsers", "yes"})
	}
	h = append(h, [][2]string{
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"ProtectClock", "yes"},
		{"ProtectHostname", "yes"},
		{"ProtectProc", "invisible"},
		{"ProcSubset", "pid"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"RestrictNamespaces", "yes"},
		{"RestrictRealtime", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"LockPersonality", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"SystemCallArchitectures", "native"},
		{"SystemCallFilter", "@system-service"},
		{"SystemCallFilter", "~@privileged @resources"},
		// A filtered call fails with EPERM instead of killing the
		// process, so a library probing a call gets an error it can
		// handle.
		{"SystemCallErrorNumber", "EPERM"},
	}...)
	if lowPort {
		h = append(h,
			[2]string{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
			[2]string{"AmbientCapabilities", "CAP_NET_BIND_SERVICE"})
	} else {
		h = append(h, [2]string{"CapabilityBoundingSet", ""})
	}
	return append(h, [][2]string{
		{"UMask", "0077"},
		{"RemoveIPC", "yes"},
		{"KeyringMode", "private"},
		{"DevicePolicy", "closed"},
	}...)
}

// adds are the directives whose overrides add to berth's lines instead
// of replacing them: systemd reads every line of them, and a variable set
// again takes the last value, so an override can add a variable
// (TZ=UTC) or change one of berth's (GOMAXPROCS=4) without dropping
// GOMAXPROCS and GOMEMLIMIT, or add a file without dropping the service's
// env file. An empty override still removes berth's lines first.
var adds = map[[2]string]bool{
	{"Service", "Environment"}:     true,
	{"Service", "EnvironmentFile"}: true,
}

// override applies ovs to ds; see Options.Overrides.
func override(ds, ovs []Directive) ([]Directive, error) {
	type key = [2]string
	groups := map[key][]Directive{} // an overridden key's new directives
	reset := map[key]bool{}         // keys with an empty override
	var order []key
	for _, d := range ovs {
		if err := checkDirective(d); err != nil {
			return nil, fmt.Errorf("override %s: %w", d, err)
		}
		k := key{d.Section, d.Name}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
			groups[k] = []Directive{}
		}
		if d.Value == "" {
			reset[k] = true
		} else {
			groups[k] = append(groups[k], d)
		}
	}
	last := map[key]int{}
	for i, d := range ds {
		last[key{d.Section, d.Name}] = i
	}
	out := make([]Directive, 0, len(ds)+len(ovs))
	done := map[key]bool{}
	for i, d := range ds {
		k := key{d.Section, d.Name}
		g, ok := groups[k]
		switch {
		case !ok:
			out = append(out, d)
		case adds[k] && !reset[k]:
			// Kept, with the overrides after the last of them.
			out = append(out, d)
			if last[k] == i {
				out = append(out, g...)
				done[k] = true
			}
		case !done[k]:
			// Replaced, at the place of the first.
			out = append(out, g...)
			done[k] = true
		}
	}
	// Overrides of directives the unit does not have go at the end of
	// their section, or in a new section at the end.
	for _, k := range order {
		if done[k] {
			continue
		}
		at := -1
		for i, d := range out {
			if d.Section == k[0] {
				at = i + 1
			}
		}
		g := groups[k]
		if at < 0 {
			out = append(out, g...)
			continue
		}
		out = append(out[:at], append(append([]Directive{}, g...), out[at:]...)...)
	}
	return out, nil
}

// serialize writes ds grouped by section, in the order sections first
// appear, after the header comment lines.
func serialize(header []string, ds []Directive) ([]byte, error) {
	var b bytes.Buffer
	for _, h := range header {
		if err := checkText("header", h); err != nil {
			return nil, err
		}
		b.WriteString("# " + h + "\n")
	}
	var sections []string
	bySection := map[string][]Directive{}
	for _, d := range ds {
		if err := checkDirective(d); err != nil {
			return nil, err
		}
		if _, ok := bySection[d.Section]; !ok {
			sections = append(sections, d.Section)
		}
		bySection[d.Section] = append(bySection[d.Section], d)
	}
	for _, s := range sections {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("[" + s + "]\n")
		for _, d := range bySection[s] {
			b.WriteString(d.Name + "=" + d.Value + "\n")
		}
	}
	return b.Bytes(), nil
}

func header(t plan.Target) []string {
	return []string{
		"Code generated by berth. DO NOT EDIT.",
		fmt.Sprintf("Service %s, declared at %s.", t.Service, t.Source.Start),
	}
}

// cpuQuota is CPUQuota= for cpu cores: a percentage with at most two
// decimals, as systemd reads it, and never 0%.
func cpuQuota(cpu float64) string {
	pct := math.Round(cpu*10000) / 100
	if pct < 0.01 {
		pct = 0.01
	}
	return strconv.FormatFloat(pct, 'f', -1, 64) + "%"
}

// ninetyPercent is 90% of n rounded down, without overflowing int64; the
// same rule as plan.GOMEMLIMIT.
func ninetyPercent(n int64) int64 { return n/10*9 + n%10*9/10 }

// lowPort reports whether a port is below 1024.
func lowPort(ports []string) (bool, error) {
	low := false
	for _, p := range ports {
		num, _, _ := strings.Cut(p, "/")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 {
			return false, fmt.Errorf("invalid port %q", p)
		}
		if n < 1024 {
			low = true
		}
	}
	return low, nil
}
