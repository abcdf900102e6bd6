package berth

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthbuild/berth/pkg/engine"
)

// buildctl builds BuildKit's client, which the connection helpers run on
// the far side (buildctl dial-stdio), from the version in go.mod.
func buildctl(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "buildctl")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/moby/buildkit/cmd/buildctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build buildctl: %v\n%s", err, out)
	}
	return bin
}

// runningEngine starts an embedded engine and returns its socket.
func runningEngine(t *testing.T, eo engine.Options) string {
	t.Helper()
	e, err := engine.Connect(context.Background(), eo)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	p, err := engine.EnginePaths(eo)
	if err != nil {
		t.Fatal(err)
	}
	return p.Socket
}

// TestBuilderOverSSH builds through --builder ssh://root@127.0.0.1:PORT/SOCKET:
// an sshd of the test's own on the loopback, whose sessions find buildctl,
// which dials the test engine's socket. The ssh client is the system's,
// run through BuildKit's ssh connection helper as berth registers it.
func TestBuilderOverSSH(t *testing.T) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Fatal("this test needs sshd (Debian: openssh-server; .ci/run installs it)")
	}
	sock := runningEngine(t, testEngine(t))
	dir := t.TempDir()
	binDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	buildctl(t, binDir)
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	cfg := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv PATH=%s:/usr/bin:/bin
`, port, filepath.Join(dir, "host"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"), binDir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation
		t.Fatal(err)
	}
	srv := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	log, _ := os.Create(filepath.Join(dir, "sshd.log"))
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()

	// The client: the system's ssh, told (as a user's ~/.ssh/config
	// would) which key to use and to trust this host.
	clientCfg := fmt.Sprintf("Host 127.0.0.1\n  IdentityFile %s\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n", filepath.Join(dir, "client"))
	if err := os.WriteFile(filepath.Join(dir, "ssh_config"), []byte(clientCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(dir, "shim")
	if err := os.Mkdir(shim, 0o755); err != nil {
		t.Fatal(err)
	}
	real, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatal("this test needs an ssh client (Debian: openssh-client)")
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %s -F %s \"$@\"\n", real, filepath.Join(dir, "ssh_config"))
	if err := os.WriteFile(filepath.Join(shim, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", shim+":"+os.Getenv("PATH"))

	addr := "ssh://root@127.0.0.1:" + port + sock
	var e *engine.Engine
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e, err = engine.Connect(ctx, engine.Options{Builder: addr})
		cancel()
		if err == nil {
			break
		}
		if i > 50 {
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Fatalf("connect over ssh: %v\nsshd log:\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if e.Kind != engine.Remote {
		t.Errorf("engine %+v", e)
	}
	e.Close()

	project := copyTree(t, "../../examples/hello")
	res, _ := build(t, project, func(o *BuildOptions) { o.Engine = engine.Options{Builder: addr} })
	fileIn(t, image(t, res.Layout, "hello:0.0.0-dev", "linux/amd64"), "/hello")
}

// TestBuilderInDockerContainer builds through --builder
// docker-container://NAME: BuildKit's helper runs `docker exec -i NAME
// buildctl dial-stdio` against a Docker engine of the test's own, in a
// container holding only a static busybox and buildctl, with the test
// engine's socket mounted where buildctl looks by default.
func TestBuilderInDockerContainer(t *testing.T) {
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Fatal("this test needs a static /bin/busybox (Debian: busybox-static; .ci/run installs it)")
	}
	sock := runningEngine(t, testEngine(t))
	host := testDocker(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"bin", "usr/bin", "run/buildkit", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	buildctl(t, filepath.Join(root, "usr/bin"))
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	docker := dockerCLI(t)
	tarball := filepath.Join(dir, "root.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if out, err := exec.Command(docker, "-H", host, "import", tarball, "berth-test/buildctl:1").CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v %s", err, out)
	}
	name := "berth-buildctl"
	if out, err := exec.Command(docker, "-H", host, "run", "-d", "--name", name, "--network", "none",
		"-v", filepath.Dir(sock)+":/run/buildkit", "berth-test/buildctl:1", "/bin/busybox", "sleep", "100000").CombinedOutput(); err != nil {
		t.Fatalf("docker run: %v %s", err, out)
	}
	defer exec.Command(docker, "-H", host, "rm", "-f", name).Run()
	if filepath.Base(sock) != "buildkitd.sock" {
		t.Fatalf("the engine's socket is %s; buildctl's default is buildkitd.sock", sock)
	}

	addr := "docker-container://" + name
	project := copyTree(t, "../../examples/hello")
	res, _ := build(t, project, func(o *BuildOptions) { o.Engine = engine.Options{Builder: addr} })
	fileIn(t, image(t, res.Layout, "hello:0.0.0-dev", "linux/amd64"), "/hello")
}
