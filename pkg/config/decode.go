package config

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"github.com/berthbuild/berth/pkg/diag"
)

// Decoding validated CUE values into the config structs.

var (
	p_project        = cue.ParsePath("project")
	p_version_top    = cue.ParsePath("version")
	p_allowRoot      = cue.ParsePath("allowRoot")
	p_args           = cue.ParsePath("args")
	p_base           = cue.ParsePath("base")
	p_binary         = cue.ParsePath("binary")
	p_builder        = cue.ParsePath("builder")
	p_cgo            = cue.ParsePath("cgo")
	p_cpu            = cue.ParsePath("cpu")
	p_description    = cue.ParsePath("description")
	p_dockerfile     = cue.ParsePath("dockerfile")
	p_env            = cue.ParsePath("env")
	p_flags          = cue.ParsePath("flags")
	p_gomaxprocs     = cue.ParsePath("gomaxprocs")
	p_gomemlimit     = cue.ParsePath("gomemlimit")
	p_group          = cue.ParsePath("group")
	p_image          = cue.ParsePath("image")
	p_limits         = cue.ParsePath("limits")
	p_main           = cue.ParsePath("main")
	p_memory         = cue.ParsePath("memory")
	p_nofile         = cue.ParsePath("nofile")
	p_outputs        = cue.ParsePath("outputs")
	p_platforms      = cue.ParsePath("platforms")
	p_ports          = cue.ParsePath("ports")
	p_private        = cue.ParsePath("private")
	p_proxy          = cue.ParsePath("proxy")
	p_runtime        = cue.ParsePath("runtime")
	p_stamp_date     = cue.ParsePath("stamp.date")
	p_stamp_revision = cue.ParsePath("stamp.revision")
	p_stamp_version  = cue.ParsePath("stamp.version")
	p_sumdb          = cue.ParsePath("sumdb")
	p_systemd        = cue.ParsePath("systemd")
	p_tags           = cue.ParsePath("tags")
	p_tasks          = cue.ParsePath("tasks")
	p_user           = cue.ParsePath("user")
	p_version        = cue.ParsePath("version")
)

func decodeGo(g *Go, v cue.Value, fields map[string]diag.Pos) {
	g.Version, _ = str(v.LookupPath(p_version))
	g.Proxy, _ = str(v.LookupPath(p_proxy))
	g.SumDB, _ = str(v.LookupPath(p_sumdb))
	g.Private, _ = str(v.LookupPath(p_private))
	g.Flags = strs(v.LookupPath(p_flags))
	g.Tags = strs(v.LookupPath(p_tags))
	g.Stamp.Version, _ = str(v.LookupPath(p_stamp_version))
	g.Stamp.Revision, _ = str(v.LookupPath(p_stamp_revision))
	g.Stamp.Date, _ = str(v.LookupPath(p_stamp_date))
	for _, f := range []string{"version", "proxy", "sumdb", "private", "flags", "tags", "stamp"} {
		if x := v.LookupPath(cue.ParsePath(f)); x.Exists() {
			fields["go."+f] = pos(x)
		}
	}
}

// decodeBuilders reads the builders block; each entry's position is
// Fields["builders.<key>"].
func decodeBuilders(v cue.Value, fields map[string]diag.Pos) map[string]Builder {
	out := map[string]Builder{}
	it, err := v.Fields()
	if err != nil {
		return out
	}
	for it.Next() {
		key := it.Selector().Unquoted()
		x := it.Value()
		fields["builders."+key] = pos(x)
		var b Builder
		if a, ok := str(x); ok {
			b.Address = a
		} else {
			b.Address, _ = str(x.LookupPath(cue.ParsePath("address")))
			tls := x.LookupPath(cue.ParsePath("tls"))
			b.CACert, _ = str(tls.LookupPath(cue.ParsePath("ca")))
			b.Cert, _ = str(tls.LookupPath(cue.ParsePath("cert")))
			b.Key, _ = str(tls.LookupPath(cue.ParsePath("key")))
			b.ServerName, _ = str(tls.LookupPath(cue.ParsePath("serverName")))
		}
		out[key] = b
	}
	return out
}

// decodeService reads a validated service; present says which of
// serviceFields it has, subs (where not nil) which fields their structs
// have. It reads them field by field: Fields sorts the fields of a
// struct, and of every struct the schema adds to it, which costs more
// than the lookups on thousands of services.
func decodeService(s *Service, v cue.Value, present []bool, subs [][]cue.Selector) {
	group := -1
	var out cue.Value
	var outSubs []cue.Selector
	for i, sf := range serviceFields {
		if !present[i] {
			continue
		}
		f := v.LookupPath(sf.path)
		switch sf.name {
		case "main":
			s.Main, _ = f.String()
		case "description":
			s.Description, _ = f.String()
		case "platforms":
			for _, p := range strs(f) {
				s.Platforms = append(s.Platforms, ParsePlatform(p))
			}
		case "base":
			s.Base, _ = f.String()
		case "builder":
			s.Builder, _ = f.String()
		case "cgo":
			s.CGO, _ = f.Bool()
		case "user":
			u, _ := f.Int64()
			s.User = int(u)
		case "group":
			g, _ := f.Int64()
			group = int(g)
		case "allowRoot":
			s.AllowRoot, _ = f.Bool()
		case "args":
			s.Args = strs(f)
		case "env":
			for it := fieldsOf(f, subs[i]); it.next(); {
				val, _ := it.val.String()
				s.Env = append(s.Env, EnvVar{Name: it.sel.Unquoted(), Value: val})
			}
			sort.Slice(s.Env, func(i, j int) bool { return s.Env[i].Name < s.Env[j].Name })
		case "ports":
			ports, _ := f.List()
			for ports.Next() {
				s.Ports = append(s.Ports, parsePort(ports.Value()))
			}
		case "limits":
			for it := fieldsOf(f, subs[i]); it.next(); {
				x := it.val
				switch it.sel.Unquoted() {
				case "cpu":
					s.Limits.CPU, _ = x.Float64()
				case "memory":
					s.Limits.Memory, s.Limits.MemoryText = bytesOf(x)
				case "nofile":
					s.Limits.NoFile, _ = x.Int64()
				case "tasks":
					s.Limits.Tasks, _ = x.Int64()
				}
			}
		case "runtime":
			for it := fieldsOf(f, subs[i]); it.next(); {
				x := it.val
				switch it.sel.Unquoted() {
				case "gomaxprocs":
					n, _ := x.Int64()
					s.Runtime.GOMAXPROCS = int(n)
				case "gomemlimit":
					s.Runtime.GOMEMLIMIT, s.Runtime.GOMEMLIMITText = bytesOf(x)
				}
			}
		case "outputs":
			out, outSubs = f, subs[i]
		case "secrets":
			sec, _ := f.Fields()
			for sec.Next() {
				x := sec.Value()
				e, _ := x.LookupPath(cue.ParsePath("env")).String()
				file, _ := x.LookupPath(cue.ParsePath("file")).String()
				s.Secrets = append(s.Secrets, Secret{Name: sec.Selector().Unquoted(), Env: e, File: file})
			}
			sort.Slice(s.Secrets, func(i, j int) bool { return s.Secrets[i].Name < s.Secrets[j].Name })
		case "systemd":
			secs, _ := f.Fields()
			for secs.Next() {
				ds, _ := secs.Value().Fields()
				for ds.Next() {
					val, _ := ds.Value().String()
					s.Systemd = append(s.Systemd, Directive{Section: secs.Selector().Unquoted(), Name: ds.Selector().Unquoted(), Value: val})
				}
			}
			sort.SliceStable(s.Systemd, func(i, j int) bool {
				a, b := s.Systemd[i], s.Systemd[j]
				if a.Section != b.Section {
					return a.Section < b.Section
				}
				return a.Name < b.Name
			})
		}
	}
	s.Group = s.User
	if group >= 0 {
		s.Group = group
	}
	// Image, unit and Dockerfile default to on when every platform is
	// linux; the schema refuses them explicitly on for other platforms.
	allLinux := len(s.Platforms) > 0
	for _, p := range s.Platforms {
		allLinux = allLinux && p.OS == "linux"
	}
	s.Outputs = Outputs{Binary: true, Image: allLinux, Systemd: allLinux, Dockerfile: allLinux}
	if o := fieldsOf(out, outSubs); o.ok() {
		for o.next() {
			b, err := o.val.Bool()
			if err != nil {
				continue
			}
			switch o.sel.Unquoted() {
			case "binary":
				s.Outputs.Binary = b
			case "image":
				s.Outputs.Image = b
			case "systemd":
				s.Outputs.Systemd = b
			case "dockerfile":
				s.Outputs.Dockerfile = b
			}
		}
	}
}

// structFields iterates over the regular fields of a struct: the fields
// named by sels, or, without them, what Fields gives.
type structFields struct {
	v    cue.Value
	sels []cue.Selector
	it   *cue.Iterator
	err  error
	i    int
	sel  cue.Selector
	val  cue.Value
}

// fieldsOf iterates over v's fields; sels, when not nil, are these
// fields.
func fieldsOf(v cue.Value, sels []cue.Selector) *structFields {
	return &structFields{v: v, sels: sels}
}

// ok reports whether v is a struct to iterate over, as Fields does.
func (f *structFields) ok() bool {
	if f.sels != nil {
		return f.v.Exists()
	}
	f.start()
	return f.err == nil
}

func (f *structFields) start() {
	if f.it == nil && f.err == nil {
		f.it, f.err = f.v.Fields()
	}
}

func (f *structFields) next() bool {
	if f.sels != nil {
		if f.i >= len(f.sels) {
			return false
		}
		f.sel = f.sels[f.i]
		f.val = f.v.LookupPath(cue.MakePath(f.sel))
		f.i++
		return true
	}
	f.start()
	if f.err != nil || !f.it.Next() {
		return false
	}
	f.sel, f.val = f.it.Selector(), f.it.Value()
	return true
}

func boolOr(v cue.Value, def bool) bool {
	if b, err := v.Bool(); err == nil {
		return b
	}
	return def
}

func parsePort(v cue.Value) Port {
	if n, err := v.Int64(); err == nil {
		return Port{Num: int(n), Proto: "tcp"}
	}
	s, _ := v.String()
	num, proto, _ := strings.Cut(s, "/")
	n, _ := strconv.Atoi(num)
	return Port{Num: n, Proto: proto}
}

var units = map[string]int64{
	"": 1, "B": 1,
	"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// bytesOf reads a validated memory size; -1 when an int64 cannot hold
// it (service1 refuses that).
func bytesOf(v cue.Value) (int64, string) {
	if n, err := v.Int64(); err == nil {
		return n, strconv.FormatInt(n, 10)
	}
	if b, err := v.Int(nil); err == nil {
		return -1, b.String()
	}
	s, _ := v.String()
	return ParseBytes(s), s
}

// ParseBytes converts a size such as "256Mi", "1G" or "230MiB" to bytes;
// it returns -1 for what it cannot read.
func ParseBytes(s string) int64 {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return -1
	}
	u, ok := units[s[i:]]
	if !ok || n > math.MaxInt64/u {
		return -1
	}
	return n * u
}

func str(v cue.Value) (string, bool) {
	s, err := v.String()
	return s, err == nil
}

func strs(v cue.Value) []string {
	it, err := v.List()
	if err != nil {
		return nil
	}
	var out []string
	for it.Next() {
		s, _ := it.Value().String()
		out = append(out, s)
	}
	return out
}
