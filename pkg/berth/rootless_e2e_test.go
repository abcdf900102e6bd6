package berth

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// asUser runs berth as an unprivileged user, with a minimal environment.
func asUser(t *testing.T, u *user.User, berth, dir, state string, args ...string) (string, error) {
	t.Helper()
	cmdArgs := []string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "env", "-i",
		"PATH=" + filepath.Dir(goBinary(t)) + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username,
		"XDG_STATE_HOME=" + state, "BERTH_BUILDKITD=" + filepath.Join(filepath.Dir(berth), "buildkitd"),
		"SOURCE_DATE_EPOCH=1700000000", "GOFLAGS=-buildvcs=false",
		berth}
	cmd := exec.Command("setpriv", append(cmdArgs, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func goBinary(t *testing.T) string {
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	p, _ = filepath.EvalSymlinks(p)
	return p
}

// ensureUser creates an unprivileged user with a home (useradd -m also
// writes its subordinate id ranges).
func ensureUser(t *testing.T, name string) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a user and needs root (CI runs as root)")
	}
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "-m", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v %s", err, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// berthBinary builds berth where any user can run it.
func berthBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bbin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "berth")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/berth").CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v %s", err, out)
	}
	// buildkitd goes next to it: the checkout may sit where the test user
	// cannot reach (a 0700 temporary directory, root's home).
	bk, err := os.ReadFile(testEngine(t).Buildkitd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "buildkitd"), bk, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func userDir(t *testing.T, u *user.User, src string) string {
	t.Helper()
	dir := copyTree(t, src)
	exec.Command("chown", "-R", u.Uid+":"+u.Gid, dir).Run()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return dir
}

func stateDir(t *testing.T, u *user.User) string {
	t.Helper()
	d, err := os.MkdirTemp("", "brs")
	if err != nil {
		t.Fatal(err)
	}
	exec.Command("chown", u.Uid+":"+u.Gid, d).Run()
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestRootlessBuild(t *testing.T) {
	for _, tool := range []string{"rootlesskit", "newuidmap", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install rootlesskit and uidmap (apt-get install -y rootlesskit uidmap); .ci/run does", tool)
		}
	}
	u := ensureUser(t, "berth-rootless")
	berth := berthBinary(t)
	dir := userDir(t, u, "../../examples/hello")
	state := stateDir(t, u)
	out, err := asUser(t, u, berth, dir, state, "build", "--progress", "plain")
	if err != nil {
		t.Fatalf("rootless build: %v\n%s", err, out)
	}
	res := filepath.Join(dir, "dist")
	img := image(t, filepath.Join(res, "oci"), "hello:0.0.0-dev", "linux/amd64")
	bin := filepath.Join(t.TempDir(), "hello")
	os.WriteFile(bin, fileIn(t, img, "/hello"), 0o755)
	if got, err := exec.Command(bin, "rootless").CombinedOutput(); err != nil || !bytes.Equal(got, []byte("hello, rootless, from berth\n")) {
		t.Errorf("binary from the rootless image: %v %q", err, got)
	}
	status, _ := asUser(t, u, berth, dir, state, "engine", "status")
	if !strings.Contains(status, "mode rootless") {
		t.Errorf("engine status does not say rootless:\n%s", status)
	}
	if out, err := asUser(t, u, berth, dir, state, "engine", "stop"); err != nil {
		t.Fatalf("engine stop: %v %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, _ := exec.Command("pgrep", "-u", u.Uid, "-l").Output()
		if len(bytes.TrimSpace(ps)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of %s left after engine stop:\n%s", u.Username, ps)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestRootlessPreflightSubuid(t *testing.T) {
	u := ensureUser(t, "berth-nosub")
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, u.Username+":") && l != "" {
				keep = append(keep, l)
			}
		}
		if err := os.WriteFile(f, []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	berth := berthBinary(t)
	dir := userDir(t, u, "../../examples/hello")
	out, err := asUser(t, u, berth, dir, stateDir(t, u), "build")
	if err == nil {
		t.Fatalf("a build without subordinate ids succeeded:\n%s", out)
	}
	want := fmt.Sprintf(`add the line "%s:100000:65536" to /etc/subuid`, u.Username)
	if !strings.Contains(out, want) {
		t.Errorf("the preflight message does not say what to add (%q):\n%s", want, out)
	}
}
