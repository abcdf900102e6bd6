package dockerfile

import (
	"fmt"
	"sort"
	"strings"

	"github.com/berthbuild/berth/pkg/plan"
)

// The static base is the one berth's LLB path assembles (package llbgen):
// the same paths, accounts and image environment, so that an image built
// from the Dockerfile matches. Only the CA bundle's source differs: the
// LLB path writes the pinned golang.org/x/crypto/x509roots/fallback roots,
// the Dockerfile copies the builder image's bundle.
const (
	// ZoneInfo is the Go toolchain's time zone database; ZONEINFO points
	// at it, because a -trimpath binary does not know its GOROOT.
	ZoneInfo = "/usr/share/zoneinfo.zip"
	// CACerts is the CA bundle; SSL_CERT_FILE points at it.
	CACerts = "/etc/ssl/certs/ca-certificates.crt"
	// NonrootID is the uid and gid of the static base's nonroot user.
	NonrootID = 65532
	// Path is the image's PATH.
	Path = "/usr/local/bin:/usr/bin:/bin"

	// baseDir is where the build stage gathers the base's files.
	baseDir = "/out/base"
)

// passwd is /etc/passwd: root, nonroot and, for another uid, "app".
func passwd(uid, gid int) []string {
	p := []string{
		"root:x:0:0:root:/root:/sbin/nologin",
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin", NonrootID, NonrootID),
	}
	if uid != 0 && uid != NonrootID {
		p = append(p, fmt.Sprintf("app:x:%d:%d:app:/home/app:/sbin/nologin", uid, gid))
	}
	return p
}

// group is /etc/group, with the same accounts.
func group(gid int) []string {
	g := []string{"root:x:0:", fmt.Sprintf("nonroot:x:%d:", NonrootID)}
	if gid != 0 && gid != NonrootID {
		g = append(g, fmt.Sprintf("app:x:%d:", gid))
	}
	return g
}

// home is the service user's home directory, owned by the user.
func home(uid int) string {
	if uid != 0 && uid != NonrootID {
		return "/home/app"
	}
	return "/home/nonroot"
}

// prepareBase gathers the base's files from the builder image in the build
// stage, before anything that depends on the target platform, so it runs
// once for all of them.
func (s *service) prepareBase(w *writer) {
	t := s.t
	h := baseDir + home(t.User)
	cmds := []string{
		fmt.Sprintf("mkdir -p %[1]s/etc/ssl/certs %[1]s/usr/share %[1]s/tmp %[2]s", baseDir, h),
		fmt.Sprintf("cp %s %s%s", CACerts, baseDir, CACerts),
		fmt.Sprintf(`cp "$(go env GOROOT)/lib/time/zoneinfo.zip" %s%s`, baseDir, ZoneInfo),
		fmt.Sprintf("chmod 0777 %s/tmp", baseDir),
		fmt.Sprintf("chmod 0700 %s", h),
		fmt.Sprintf("chown %d:%d %s", t.User, t.Group, h),
	}
	w.line("RUN %s", strings.Join(cmds, " \\\n    && "))
}

// staticStage assembles berth's static base as a stage of its own, so
// that the image gets it as one layer.
func (s *service) staticStage(w *writer) {
	t := s.t
	w.blank()
	w.comment("%s is berth's built-in base: accounts, CA certificates, time zones.", staticStage)
	w.line("FROM scratch AS %s", staticStage)
	w.line("COPY --from=%s %s/ /", buildStage, baseDir)
	w.heredoc("/etc/passwd", passwd(t.User, t.Group))
	w.heredoc("/etc/group", group(t.Group))
	w.heredoc("/etc/nsswitch.conf", []string{"hosts: files dns"})
}

// imageEnv is the image's environment, as the LLB path sets it: PATH,
// for the static base SSL_CERT_FILE and ZONEINFO, then the target's
// runtime environment (which wins), sorted by name.
func imageEnv(t plan.Target) []plan.EnvVar {
	env := map[string]string{"PATH": Path}
	if t.Base == "static" {
		env["SSL_CERT_FILE"] = CACerts
		env["ZONEINFO"] = ZoneInfo
	}
	for _, e := range t.Env {
		env[e.Name] = e.Value
	}
	out := make([]plan.EnvVar, 0, len(env))
	for k, v := range env {
		out = append(out, plan.EnvVar{Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
