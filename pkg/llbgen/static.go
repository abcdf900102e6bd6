package llbgen

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/moby/buildkit/client/llb"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/berthbuild/berth/pkg/plan"
)

// Files of the static base.
const (
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// CACertsFile is the name of the CA bundle in Env.Static.
	CACertsFile  = "ca-certificates.crt"
	ZoneinfoPath = "/usr/share/zoneinfo.zip"
)

// NonRoot is the uid and gid of the static base's default user.
const NonRoot = 65532

// CACerts returns the PEM bundle of the roots in
// golang.org/x/crypto/x509roots/fallback, pinned by go.mod. Roots that
// carry constraints a PEM file cannot express are left out.
func CACerts() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// Passwd and Group return the static base's account files: root, nonroot
// (65532) and, when the service runs as another uid, that user as "app".
func Passwd(uid, gid int) []byte {
	var b bytes.Buffer
	b.WriteString("root:x:0:0:root:/root:/sbin/nologin\n")
	b.WriteString(fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRoot, NonRoot))
	if uid != 0 && uid != NonRoot {
		b.WriteString(fmt.Sprintf("app:x:%d:%d:app:/home/app:/sbin/nologin\n", uid, gid))
	}
	return b.Bytes()
}

// Group returns /etc/group of the static base.
func Group(gid int) []byte {
	var b bytes.Buffer
	b.WriteString("root:x:0:\n")
	b.WriteString(fmt.Sprintf("nonroot:x:%d:\n", NonRoot))
	if gid != 0 && gid != NonRoot {
		b.WriteString(fmt.Sprintf("app:x:%d:\n", gid))
	}
	return b.Bytes()
}

// StaticBase assembles the built-in base with file operations only: no
// pull, no package manager, the same bytes on every machine.
func StaticBase(env Env, t *plan.Target, epoch time.Time) llb.State {
	ct := llb.WithCreatedTime(epoch)
	// Copied files belong to root whoever sent them (a rootless engine
	// receives the user's files).
	root := &llb.ChownOpt{User: &llb.UserOpt{UID: 0}, Group: &llb.UserOpt{UID: 0}}
	home := "/home/nonroot"
	if t.User != 0 && t.User != NonRoot {
		home = "/home/app"
	}
	fa := llb.Mkdir("/etc", 0o755, ct).
		Mkfile("/etc/passwd", 0o644, Passwd(t.User, t.Group), ct).
		Mkfile("/etc/group", 0o644, Group(t.Group), ct).
		Mkfile("/etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n"), ct).
		Mkdir("/etc/ssl", 0o755, ct).
		Mkdir("/etc/ssl/certs", 0o755, ct).
		Copy(env.Static, "/"+CACertsFile, CACertsPath, &llb.CopyInfo{CreatedTime: &epoch, Mode: &llb.ChmodOpt{Mode: 0o644}, ChownOpt: root}).
		Mkdir("/usr", 0o755, ct).
		Mkdir("/usr/share", 0o755, ct).
		Copy(env.Toolchain, "/lib/time/zoneinfo.zip", ZoneinfoPath, &llb.CopyInfo{CreatedTime: &epoch, Mode: &llb.ChmodOpt{Mode: 0o644}, ChownOpt: root}).
		Mkdir("/tmp", 0o777, ct).
		Mkdir("/home", 0o755, ct).
		Mkdir(home, 0o700, ct, llb.WithUIDGID(t.User, t.Group))
	staging := llb.Scratch().File(fa, llb.WithCustomName("[berth] stage static base"))
	return llb.Scratch().File(stamped(staging, epoch), llb.WithCustomName("[berth] static base"))
}
