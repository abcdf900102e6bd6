package berth

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/berthbuild/berth/pkg/engine"
)

// privateEngine is an embedded engine for one test, which may kill it.
func privateEngine(t *testing.T) engine.Options {
	t.Helper()
	shared := testEngine(t)
	state, err := os.MkdirTemp("", "bpe")
	if err != nil {
		t.Fatal(err)
	}
	o := engine.Options{StateDir: state, Buildkitd: shared.Buildkitd}
	t.Cleanup(func() {
		engine.Stop(context.Background(), o)
		os.RemoveAll(state)
	})
	return o
}

// startedCompile returns a Status hook that closes ch once a go build
// step has started.
func startedCompile(ch chan struct{}) func(*client.SolveStatus) {
	var once sync.Once
	return func(s *client.SolveStatus) {
		for _, v := range s.Vertexes {
			if v.Started != nil && strings.Contains(v.Name, "] go build") {
				once.Do(func() { close(ch) })
			}
		}
	}
}

// buildUntilCompiling starts a --no-cache build of dir and returns once a
// go build step runs; the build's result arrives on the channel.
func buildUntilCompiling(t *testing.T, ctx context.Context, dir string, eo engine.Options) chan error {
	t.Helper()
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := Build(ctx, BuildOptions{
			Options: Options{Dir: dir, Env: testEnv(nil)}, Engine: eo, Progress: "quiet",
			NoCache: true, Status: startedCompile(started),
		})
		errc <- err
	}()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("build ended before compiling: %v", err)
	case <-time.After(5 * time.Minute):
		t.Fatal("no compile step started")
	}
	return errc
}

func noOutputs(t *testing.T, dir string) {
	t.Helper()
	for _, p := range []string{"dist/oci", "dist/bin"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s was published by a build that failed", p)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "dist"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: dist/%s", e.Name())
		}
	}
}

func TestEngineKilledMidBuild(t *testing.T) {
	eo := privateEngine(t)
	dir := copyTree(t, "../../examples/hello")
	errc := buildUntilCompiling(t, context.Background(), dir, eo)
	p, err := engine.EnginePaths(eo)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, p.PID)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-errc:
	case <-time.After(60 * time.Second):
		t.Fatal("berth hangs after its engine died")
	}
	if err == nil {
		t.Fatal("the build succeeded without its engine")
	}
	if !strings.Contains(err.Error(), "embedded engine") {
		t.Errorf("the error does not name the engine: %v", err)
	}
	noOutputs(t, dir)
	// The next build starts the engine again and succeeds.
	res, err := Build(context.Background(), BuildOptions{Options: Options{Dir: dir, Env: testEnv(nil)}, Engine: eo, Progress: "quiet"})
	if err != nil {
		t.Fatalf("build after the engine died: %v", err)
	}
	if len(res.Images) != 1 {
		t.Errorf("images %v", res.Images)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStaleEngineFiles(t *testing.T) {
	eo := privateEngine(t)
	p, err := engine.EnginePaths(eo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A socket file nobody listens on, and the pid of a process that ended.
	cmd := exec.Command("true")
	cmd.Run()
	os.WriteFile(p.Socket, nil, 0o600)
	os.WriteFile(p.PID, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	os.WriteFile(p.Lock, nil, 0o600)
	e, err := engine.Connect(context.Background(), eo)
	if err != nil {
		t.Fatalf("stale engine files were not recovered from: %v", err)
	}
	e.Close()
	st, err := engine.EmbeddedStatus(context.Background(), eo)
	if err != nil || !st.Running {
		t.Fatalf("status after recovery: %+v %v", st, err)
	}
	if stopped, err := engine.Stop(context.Background(), eo); err != nil || !stopped {
		t.Fatalf("stop: %v %v", stopped, err)
	}
	if pid := st.PID; pid > 0 && syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		t.Errorf("buildkitd %d still runs after berth engine stop", pid)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestConcurrentBuilds(t *testing.T) {
	dir := copyTree(t, "../../examples/hello")
	outs := []string{"dist", "dist", "dist2"}
	errs := make([]error, len(outs))
	res := make([]*BuildResult, len(outs))
	var wg sync.WaitGroup
	for i, out := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = Build(context.Background(), BuildOptions{
				Options: Options{Dir: dir, Env: testEnv(nil), OutDir: out}, Engine: testEngine(t), Progress: "quiet",
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d (--out %s): %v", i, outs[i], err)
		}
	}
	for i := range outs {
		if res[i].Images[0].Digest != res[0].Images[0].Digest {
			t.Errorf("concurrent builds disagree: %s vs %s", res[i].Images[0].Digest, res[0].Images[0].Digest)
		}
		image(t, res[i].Layout, "hello:0.0.0-dev", "linux/amd64")
	}
}

func TestCancel(t *testing.T) {
	dir := copyTree(t, "../../examples/hello")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := buildUntilCompiling(t, ctx, dir, testEngine(t))
	t0 := time.Now()
	cancel()
	select {
	case err := <-errc:
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("cancel took %v, want under 2s", d)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v is not a cancellation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the build did not stop within 10s of cancel")
	}
	noOutputs(t, dir)
	// No build step of ours keeps running.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "go build .* -o /out/hello").Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("go build processes still run after cancel: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestOutputNotWritable(t *testing.T) {
	dir := copyTree(t, "../../examples/hello")
	// An output path under a regular file cannot be created, even by root.
	blocker := filepath.Join(dir, "blocker")
	os.WriteFile(blocker, []byte("keep me\n"), 0o644)
	_, err := Build(context.Background(), BuildOptions{
		Options: Options{Dir: dir, Env: testEnv(nil), OutDir: "blocker/dist"}, Engine: testEngine(t), Progress: "quiet",
	})
	if err == nil || !strings.Contains(err.Error(), "blocker") {
		t.Fatalf("want an error naming the output path, got %v", err)
	}
	if readFile(t, blocker) != "keep me\n" {
		t.Error("the file in the way was changed")
	}
}

func TestOutputFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small tmpfs and needs root (CI runs as root)")
	}
	dir := copyTree(t, "../../examples/hello")
	out := filepath.Join(dir, "small")
	os.MkdirAll(out, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", filepath.Join(dir, "small")).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", filepath.Join(dir, "small")).Run()
	os.WriteFile(filepath.Join(out, "keep"), []byte("old\n"), 0o644)
	_, err := Build(context.Background(), BuildOptions{
		Options: Options{Dir: dir, Env: testEnv(nil), OutDir: "small"}, Engine: testEngine(t), Progress: "quiet",
	})
	if err == nil {
		t.Fatal("a build into a full directory succeeded")
	}
	if !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), out) {
		t.Errorf("the error does not say the disk is full: %v", err)
	}
	if readFile(t, filepath.Join(out, "keep")) != "old\n" {
		t.Error("a file already there was changed")
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if e.Name() != "keep" {
			t.Errorf("left behind in the full directory: %s", e.Name())
		}
	}
}
