package dockerfile

import (
	"bytes"
	"fmt"

	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/berthbuild/berth/pkg/plan"
)

// RenderInfo are the plan-level facts a Dockerfile needs.
type RenderInfo struct {
	// Project and Version name the build in the header.
	Project string
	Version string
	// GoVersion picks the default builder image, golang:<GoVersion>.
	GoVersion string
	// GoImage replaces golang:<GoVersion> when a service has no builder
	// of its own, typically the same image pinned by digest.
	GoImage string
	// ModuleDir is the Go module root, the build context, relative to the
	// project directory where the header's commands run; default ".".
	ModuleDir string
	// OutDir is berth's output directory relative to the module root;
	// Dockerignore keeps it out of the context. Empty, or outside the
	// module, when there is nothing to keep out.
	OutDir string
}

// ImagePath is where the image holds the binary: at the root, as in the
// LLB path's images (llbgen.ImagePath), so the layer holds one file.
func ImagePath(binary string) string { return "/" + binary }

const (
	buildStage  = "build"
	staticStage = "static"
	// The build variables set from the platform BuildKit builds for.
	goos, goarch, goarm = "GOOS", "GOARCH", "GOARM"
)

// moduleEnv are the build variables `go mod download` needs: module
// fetching and verification, not the target.
var moduleEnv = map[string]bool{
	"GOFLAGS": true, "GOINSECURE": true, "GONOPROXY": true, "GONOSUMDB": true,
	"GOPRIVATE": true, "GOPROXY": true, "GOSUMDB": true, "GOTOOLCHAIN": true, "GOVCS": true,
}

// service is what the targets of one Dockerfile share.
var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

type service struct {
	t         plan.Target // the first target
	platforms []string
	goarm     bool        // some target sets GOARM
	buildEnv  [][2]string // t.BuildEnv without GOOS, GOARCH and GOARM
}

// Render renders the Dockerfile of one service: targets are its linux
// targets, one per platform, in the order the platforms are declared.
func Render(targets []plan.Target, p RenderInfo) ([]byte, error) {
	s, err := collect(targets)
	if err != nil {
		return nil, err
	}
	w := &writer{}
	if err := s.header(w, p); err != nil {
		return nil, fmt.Errorf("dockerfile for %s: %w", s.t.Service, err)
	}
	if err := s.buildStage(w, p); err != nil {
		return nil, fmt.Errorf("dockerfile for %s: %w", s.t.Service, err)
	}
	if s.t.Base == "static" {
		s.staticStage(w)
	}
	if err := s.finalStage(w); err != nil {
		return nil, fmt.Errorf("dockerfile for %s: %w", s.t.Service, err)
	}
	return w.Bytes(), nil
}

// collect checks that targets are one service's linux targets and gathers
// what they share.
func collect(targets []plan.Target) (*service, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("dockerfile: no targets")
	}
	s := &service{t: targets[0]}
	name := s.t.Service
	seen := map[string]bool{}
	for i, t := range targets {
		if t.GOOS != "linux" {
			return nil, fmt.Errorf("dockerfile for %s: %s is not a linux platform", name, t.Platform)
		}
		if err := checkText("platform", t.Platform); err != nil || seen[t.Platform] || !imageRe.MatchString(t.Platform) {
			return nil, fmt.Errorf("dockerfile for %s: platform %q is invalid or listed twice", name, t.Platform)
		}
		seen[t.Platform] = true
		s.platforms = append(s.platforms, t.Platform)
		if t.GOARM != "" {
			s.goarm = true
		}
		env, err := splitBuildEnv(t.BuildEnv)
		if err != nil {
			return nil, fmt.Errorf("dockerfile for %s: %w", name, err)
		}
		if i == 0 {
			s.buildEnv = env
		} else if !reflect.DeepEqual(env, s.buildEnv) {
			return nil, fmt.Errorf("dockerfile for %s: %s builds with %q, %s with %q; one Dockerfile needs one environment", name, t.Platform, t.BuildEnv, s.t.Platform, s.t.BuildEnv)
		}
		if !reflect.DeepEqual(shared(t), shared(s.t)) {
			return nil, fmt.Errorf("dockerfile for %s: target %s %s differs from %s %s in more than its platform", name, t.Service, t.Platform, s.t.Service, s.t.Platform)
		}
	}
	return s, s.check()
}

// shared is t without what differs between the platforms of a service.
func shared(t plan.Target) plan.Target {
	t.Platform, t.GOARCH, t.GOARM = "", "", ""
	t.BuildEnv, t.Command, t.Paths.Binary = nil, nil, ""
	return t
}

// splitBuildEnv splits NAME=value pairs and drops the platform variables.
func splitBuildEnv(env []string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envNameRe.MatchString(k) {
			return nil, fmt.Errorf("build environment entry %q is not NAME=value", kv)
		}
		if err := checkText("build environment "+k, v); err != nil {
			return nil, err
		}
		if k == goos || k == goarch || k == goarm {
			continue
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// check validates what the Dockerfile writes of the shared target.
func (s *service) check() error {
	t := s.t
	bad := func(format string, args ...any) error {
		return fmt.Errorf("dockerfile for %s: "+format, append([]any{t.Service}, args...)...)
	}
	if !fileNameRe.MatchString(t.BinaryName) || !fileNameRe.MatchString(t.Service) {
		return bad("binary %q must be a plain file name", t.BinaryName)
	}
	if !strings.HasPrefix(t.Main, ".") {
		return bad("main package %q must be relative to the module root (./…)", t.Main)
	}
	switch {
	case t.Base == "scratch" || t.Base == "static":
	case pinnedRe.MatchString(t.Base):
	default:
		return bad("base %q must be scratch, static or an image pinned by digest", t.Base)
	}
	if t.Builder != "" && !imageRe.MatchString(t.Builder) {
		return bad("builder %q is not an image reference", t.Builder)
	}
	for _, f := range t.BuildFlags {
		if !strings.HasPrefix(f, "-") {
			return bad("go build flag %q does not start with -", f)
		}
	}
	if t.User < 0 || t.Group < 0 {
		return bad("negative user %d or group %d", t.User, t.Group)
	}
	for _, list := range [][]string{t.Args, t.BuildFlags, {t.Main, t.Description, t.Paths.Dockerfile, t.Paths.ImageRef, t.Source.Start.String()}} {
		for _, v := range list {
			if err := checkText("value", v); err != nil {
				return bad("%w", err)
			}
		}
	}
	for _, e := range t.Env {
		if !envNameRe.MatchString(e.Name) {
			return bad("invalid environment variable name %q", e.Name)
		}
		if err := checkText("environment variable "+e.Name, e.Value); err != nil {
			return bad("%w", err)
		}
	}
	for _, l := range t.Labels {
		if !labelRe.MatchString(l.Name) {
			return bad("invalid label name %q", l.Name)
		}
		if err := checkText("label "+l.Name, l.Value); err != nil {
			return bad("%w", err)
		}
	}
	for _, p := range t.Ports {
		if _, err := port(p); err != nil {
			return bad("%w", err)
		}
	}
	return nil
}

// builder is the image of the build stage, and whether it is pinned.
func (s *service) builder(p RenderInfo) (string, bool, error) {
	img := s.t.Builder
	if img == "" {
		img = p.GoImage
	}
	if img == "" {
		if !goVerRe.MatchString(p.GoVersion) {
			return "", false, fmt.Errorf("go version %q is invalid", p.GoVersion)
		}
		img = "golang:" + p.GoVersion
	}
	if !imageRe.MatchString(img) {
		return "", false, fmt.Errorf("builder image %q is not an image reference", img)
	}
	return img, pinnedRe.MatchString(img), nil
}

func (s *service) buildStage(w *writer, p RenderInfo) error {
	t := s.t
	img, pinned, err := s.builder(p)
	if err != nil {
		return err
	}
	w.blank()
	if !pinned {
		w.comment("%s is a tag, not pinned by digest: the image can change under you.", img)
	}
	// The last comment before FROM describes the stage, named first.
	w.comment("%s compiles for every platform on the build platform, with %s.", buildStage, img)
	w.line("FROM --platform=$BUILDPLATFORM %s AS %s", img, buildStage)
	w.line("WORKDIR /src")
	if t.Base == "static" {
		s.prepareBase(w)
	}
	// Modules come in their own step, keyed on go.mod and go.sum only, so
	// a code change never downloads them again.
	w.line("COPY go.* ./")
	var modEnv []string
	for _, kv := range s.buildEnv {
		if moduleEnv[kv[0]] {
			modEnv = append(modEnv, kv[0]+"="+shellQuote(kv[1]))
		}
	}
	// The same secret mounts as the LLB's module download: ids only.
	mounts := []string{"--mount=type=cache,target=/go/pkg/mod"}
	for _, sec := range s.t.Secrets {
		if !secretName.MatchString(sec.Name) {
			return fmt.Errorf("secret name %q", sec.Name)
		}
		target := "/run/secrets/" + sec.Name
		if sec.Name == "netrc" {
			target = "/root/.netrc"
		}
		mounts = append(mounts, "--mount=type=secret,id="+sec.Name+",target="+target)
	}
	w.run(mounts, modEnv, "go mod download")
	w.line("COPY . .")

	args := []string{"TARGETOS", "TARGETARCH"}
	env := [][2]string{{goos, `"$TARGETOS"`}, {goarch, `"$TARGETARCH"`}}
	if s.goarm {
		// TARGETVARIANT is v6 or v7 for arm, empty elsewhere: GOARM=""
		// is Go's default.
		args = append(args, "TARGETVARIANT")
		env = append(env, [2]string{goarm, `"${TARGETVARIANT#v}"`})
	}
	for _, kv := range s.buildEnv {
		env = append(env, [2]string{kv[0], shellQuote(kv[1])})
	}
	sort.Slice(env, func(i, j int) bool { return env[i][0] < env[j][0] })
	var assign []string
	for _, kv := range env {
		assign = append(assign, kv[0]+"="+kv[1])
	}
	w.line("ARG %s", strings.Join(args, " "))
	build := append([]string{"go", "build"}, t.BuildFlags...)
	build = append(build, "-o", "/out/"+t.BinaryName, t.Main)
	w.run([]string{
		"--mount=type=cache,target=/root/.cache/go-build",
		"--mount=type=cache,target=/go/pkg/mod",
	}, assign, ShellJoin(build))
	return nil
}

func (s *service) finalStage(w *writer) error {
	t := s.t
	w.blank()
	switch t.Base {
	case "scratch":
		w.line("FROM scratch")
	case "static":
		w.line("FROM scratch")
		w.line("COPY --link --from=%s / /", staticStage)
	default:
		w.line("FROM %s", t.Base)
	}
	bin := ImagePath(t.BinaryName)
	w.line("COPY --link --from=%s /out/%s %s", buildStage, t.BinaryName, bin)
	w.line("USER %d:%d", t.User, t.Group)

	var env []string
	for _, e := range imageEnv(t) {
		env = append(env, e.Name+"="+word(e.Value))
	}
	w.list("ENV", env)
	for _, p := range t.Ports {
		w.line("EXPOSE %s", p)
	}
	var labels []string
	for _, l := range t.Labels {
		labels = append(labels, l.Name+"="+word(l.Value))
	}
	w.list("LABEL", labels)
	entry, err := jsonArray([]string{bin})
	if err != nil {
		return err
	}
	w.line("ENTRYPOINT %s", entry)
	if len(t.Args) > 0 {
		cmd, err := jsonArray(t.Args)
		if err != nil {
			return err
		}
		w.line("CMD %s", cmd)
	}
	return nil
}

// writer builds the Dockerfile line by line.
type writer struct{ bytes.Buffer }

func (w *writer) line(format string, args ...any) {
	fmt.Fprintf(w, format, args...)
	w.WriteByte('\n')
}

func (w *writer) blank() { w.WriteByte('\n') }

func (w *writer) comment(format string, args ...any) {
	w.line("# "+format, args...)
}

// run writes a RUN instruction: flags, variable assignments and the
// command, one item a line.
func (w *writer) run(flags, assign []string, command string) {
	parts := append(append(append([]string{}, flags...), assign...), command)
	w.line("RUN %s", strings.Join(parts, " \\\n    "))
}

// list writes an instruction taking key=value pairs, one a line; nothing
// when there are none.
func (w *writer) list(instr string, kvs []string) {
	if len(kvs) == 0 {
		return
	}
	w.line("%s %s", instr, strings.Join(kvs, " \\\n    "))
}

func (w *writer) heredoc(dst string, lines []string) {
	w.line("COPY <<EOF %s", dst)
	for _, l := range lines {
		w.line("%s", l)
	}
	w.line("EOF")
}
