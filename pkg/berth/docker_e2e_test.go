package berth

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testDocker starts a Docker engine (Debian's docker.io) private to the
// test, without a bridge or iptables, and points DOCKER_HOST at it.
func testDocker(t *testing.T) string {
	t.Helper()
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatal("dockerd not found: install Debian's docker.io (apt-get install -y docker.io); .ci/run does")
	}
	d, err := os.MkdirTemp("", "dk")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(d, "docker.sock")
	logf, err := os.Create(filepath.Join(d, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockerd, "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--bridge=none", "--data-root", filepath.Join(d, "data"), "--exec-root", filepath.Join(d, "exec"),
		"--pidfile", filepath.Join(d, "docker.pid"), "--host", "unix://"+sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		syscall.Unmount(filepath.Join(d, "exec", "netns", "default"), syscall.MNT_DETACH)
		os.RemoveAll(d)
	})
	host := "unix://" + sock
	t.Setenv("DOCKER_HOST", host)
	for i := 0; ; i++ {
		if err := exec.Command(dockerCLI(t), "-H", host, "version").Run(); err == nil {
			break
		}
		if i > 100 {
			b, _ := os.ReadFile(filepath.Join(d, "log"))
			t.Fatalf("dockerd did not start:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return host
}

func dockerCLI(t *testing.T) string {
	for _, p := range []string{"/usr/bin/docker", "docker"} {
		if q, err := exec.LookPath(p); err == nil {
			return q
		}
	}
	t.Fatal("no docker CLI: install docker.io")
	return ""
}

func dockerRun(t *testing.T, host, image string) string {
	t.Helper()
	out, err := exec.Command(dockerCLI(t), "-H", host, "run", "--rm", "--network", "none", image).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v\n%s", image, err, out)
	}
	return string(out)
}

func TestLoadIntoDocker(t *testing.T) {
	host := testDocker(t)
	dir := copyTree(t, "../../examples/hello")
	res, _ := build(t, dir, func(o *BuildOptions) { o.Load = true; o.DockerArchive = true })
	if len(res.Loaded) != 1 || res.Loaded[0] != "hello:0.0.0-dev" {
		t.Fatalf("loaded %v", res.Loaded)
	}
	if out := dockerRun(t, host, "hello:0.0.0-dev"); out != "hello, berth user, from berth\n" {
		t.Errorf("docker run printed %q", out)
	}
	if len(res.Archives) != 1 || !strings.HasSuffix(res.Archives[0], "hello_0.0.0-dev_linux_amd64.docker.tar") {
		t.Errorf("archives %v", res.Archives)
	}
}

// --load of a service with no image for the Docker engine's platform
// fails before anything is built or written.
func TestLoadWrongPlatform(t *testing.T) {
	testDocker(t)
	dir := copyTree(t, "../../examples/hello")
	appendFile(t, filepath.Join(dir, "berth.cue"), "\nservices: hello: platforms: [\"linux/s390x\"]\n")
	log := &stepLog{}
	_, err := Build(t.Context(), BuildOptions{
		Options:  Options{Dir: dir, Env: testEnv(nil)},
		Engine:   testEngine(t),
		Progress: "quiet",
		Status:   log.status,
		Load:     true,
	})
	if err == nil || !strings.Contains(err.Error(), "--load: hello has no linux/") || !strings.Contains(err.Error(), "image, the Docker engine's platform") {
		t.Fatalf("want a clear --load error, got %v", err)
	}
	if ran := log.ran(""); len(ran) != 0 {
		t.Errorf("steps ran before --load failed: %v", ran)
	}
	if _, err := os.Stat(filepath.Join(dir, "dist")); err == nil {
		t.Error("a failed --load build wrote dist")
	}
}

func TestBuilderDocker(t *testing.T) {
	host := testDocker(t)
	dir := copyTree(t, "../../examples/hello")
	res, _ := build(t, dir, func(o *BuildOptions) { o.Engine.Builder = "docker" })
	if len(res.Loaded) != 1 {
		t.Fatalf("loaded %v", res.Loaded)
	}
	if out := dockerRun(t, host, "hello:0.0.0-dev"); out != "hello, berth user, from berth\n" {
		t.Errorf("docker run printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dist/bin/hello/linux_amd64/hello")); err != nil {
		t.Errorf("binary: %v", err)
	}
}

func TestLoadWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	dir := copyTree(t, "../../examples/hello")
	_, err := Build(t.Context(), BuildOptions{
		Options:  Options{Dir: dir, Env: testEnv(nil)},
		Engine:   testEngine(t),
		Progress: "quiet",
		Load:     true,
	})
	if err == nil || !strings.Contains(err.Error(), "--load: no Docker engine") {
		t.Fatalf("want a clear --load error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dist/oci")); err == nil {
		t.Error("a failed --load build published dist/oci")
	}
}
