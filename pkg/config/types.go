package config

import (
	"strings"

	"github.com/berthbuild/berth/pkg/diag"
)

// Project is a validated berth configuration.
type Project struct {
	Name     string
	Version  string // empty when the config leaves it to git
	Go       Go
	Services []*Service // sorted by name
	// Builders maps "default" or a platform to the BuildKit that builds
	// it; empty when the config has no builders block.
	Builders map[string]Builder
	Cache    Cache

	Dir   string   // absolute directory the config was loaded from
	Files []string // absolute paths of the .cue files, sorted
	// Sources holds each file's bytes, for LLB source maps.
	Sources map[string][]byte

	// Fields maps a dotted config path ("version", "go.version") to the
	// position of its value, for diagnostics after loading.
	Fields map[string]diag.Pos
}

// Service returns the service called name, or nil.
func (p *Project) Service(name string) *Service {
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Targets returns the number of service × platform pairs.
func (p *Project) Targets() int {
	n := 0
	for _, s := range p.Services {
		n += len(s.Platforms)
	}
	return n
}

// Go holds the project's Go settings; empty strings mean "not set".
type Go struct {
	Version string
	Proxy   string
	SumDB   string
	Private string
	Flags   []string
	Tags    []string
	Stamp   Stamp
}

// Builder is a BuildKit to build on. TLS files are absolute, or relative
// to the project's directory.
type Builder struct {
	Address                       string
	CACert, Cert, Key, ServerName string
}

// Cache holds BuildKit cache imports and exports (--cache-from, --cache-to).
type Cache struct {
	From, To []string
}

// Stamp names the Go variables set with -X.
type Stamp struct {
	Version  string
	Revision string
	Date     string
}

// Service is one service with defaults merged in.
type Service struct {
	Name        string
	Pos         diag.Pos   // the service's name in the config
	Range       diag.Range // its whole declaration
	Main        string
	Description string
	Platforms   []Platform
	Base        string // "scratch", "static" or a pinned reference
	Builder     string
	CGO         bool
	User        int
	Group       int
	AllowRoot   bool
	Args        []string
	Env         []EnvVar // sorted by name
	Ports       []Port
	Limits      Limits
	Runtime     Runtime
	Outputs     Outputs
	// Systemd are unit directives to add or override, sorted.
	Systemd []Directive
	// Secrets are given to the module download only, sorted by name.
	Secrets []Secret

	// Fields maps a path inside the service ("limits.cpu") to where its
	// value was written: in the service, or in defaults.
	Fields map[string]diag.Pos
}

// FieldPos returns the position of a field of s, falling back to the
// service itself.
func (s *Service) FieldPos(path string) diag.Pos {
	for {
		if p, ok := s.Fields[path]; ok {
			return p
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return s.Pos
		}
		path = path[:i]
	}
}

// Directive is a systemd unit directive.
type Directive struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	Value   string `json:"value"`
}

// Secret names where a build secret comes from: an environment variable
// of berth's or a file. The value itself is never in the config.
type Secret struct {
	Name string `json:"name"`
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// Platform is a Go target platform, written os/arch[/variant].
type Platform struct {
	OS      string
	Arch    string
	Variant string
}

// ParsePlatform splits "linux/arm/v7".
func ParsePlatform(s string) Platform {
	parts := strings.SplitN(s, "/", 3)
	p := Platform{OS: parts[0]}
	if len(parts) > 1 {
		p.Arch = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p
}

func (p Platform) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Arch + "/" + p.Variant
	}
	return p.OS + "/" + p.Arch
}

// Dir is the platform as a directory name: os_arch[_variant].
func (p Platform) Dir() string { return strings.ReplaceAll(p.String(), "/", "_") }

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string
	Value string
}

// Port is a port the service listens on.
type Port struct {
	Num   int
	Proto string // "tcp" or "udp"
}

func (p Port) String() string {
	return itoa(p.Num) + "/" + p.Proto
}

// Limits are runtime limits; zero means unset.
type Limits struct {
	CPU        float64
	Memory     int64 // bytes
	MemoryText string
	NoFile     int64
	Tasks      int64
}

// Runtime are explicit Go runtime settings; zero means "derive".
type Runtime struct {
	GOMAXPROCS     int
	GOMEMLIMIT     int64 // bytes
	GOMEMLIMITText string
}

// Outputs says what berth produces for a service.
type Outputs struct {
	Image      bool
	Binary     bool
	Systemd    bool
	Dockerfile bool
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
