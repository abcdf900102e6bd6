package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthbuild/berth/pkg/export"
	"github.com/moby/buildkit/client"
)

// Paths of the embedded engine inside the state directory.
type Paths struct {
	Dir    string // <state>/engine
	Root   string // buildkitd --root
	Socket string
	Log    string
	PID    string
	Lock   string
	// Rootless is true when berth runs as an unprivileged user: the
	// daemon then runs under rootlesskit.
	Rootless bool
	// Runtime is the user's private runtime directory (rootless only).
	Runtime string
}

// runtimeDir returns $XDG_RUNTIME_DIR, or makes a private one: rootless
// BuildKit fails in confusing ways without it.
func runtimeDir(o Options) (string, error) {
	if d := o.getenv("XDG_RUNTIME_DIR"); d != "" {
		return d, nil
	}
	d := filepath.Join(os.TempDir(), fmt.Sprintf("berth-runtime-%d", os.Geteuid()))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	st, err := os.Lstat(d)
	if err != nil {
		return "", err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm() != 0o700 {
		return "", fmt.Errorf("%s is not a private directory of yours: set XDG_RUNTIME_DIR to one (mode 0700)", d)
	}
	return d, nil
}

// EnginePaths returns where the embedded engine lives.
func EnginePaths(o Options) (Paths, error) {
	st, err := StateDir(o)
	if err != nil {
		return Paths{}, err
	}
	d := filepath.Join(st, "engine")
	p := Paths{
		Dir:      d,
		Root:     filepath.Join(d, "root"),
		Socket:   filepath.Join(d, "buildkitd.sock"),
		Log:      filepath.Join(d, "buildkitd.log"),
		PID:      filepath.Join(d, "buildkitd.pid"),
		Lock:     filepath.Join(d, "lock"),
		Rootless: os.Geteuid() != 0,
	}
	if p.Rootless {
		// Rootless BuildKit keeps its socket in the user's runtime
		// directory, where the user namespace can reach it.
		rt, err := runtimeDir(o)
		if err != nil {
			return p, err
		}
		p.Runtime = rt
		p.Socket = filepath.Join(rt, "berth", "buildkitd.sock")
	}
	if len(p.Socket) > 100 {
		return p, fmt.Errorf("engine socket path %s is too long for a unix socket (%d bytes, 100 at most): set XDG_STATE_HOME to a shorter directory", p.Socket, len(p.Socket))
	}
	return p, nil
}

func connectEmbedded(ctx context.Context, o Options) (*Engine, error) {
	p, err := EnginePaths(o)
	if err != nil {
		return nil, err
	}
	// Fast path: a daemon answers already.
	if e, err := dialEmbedded(ctx, p, 2*time.Second); err == nil {
		return e, nil
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := export.Lock(ctx, p.Lock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another run may have started it while we waited.
	if e, err := dialEmbedded(ctx, p, 2*time.Second); err == nil {
		return e, nil
	}
	if err := start(ctx, o, p); err != nil {
		return nil, err
	}
	return dialEmbedded(ctx, p, 5*time.Second)
}

func dialEmbedded(ctx context.Context, p Paths, timeout time.Duration) (*Engine, error) {
	if _, err := os.Stat(p.Socket); err != nil {
		return nil, err
	}
	addr := "unix://" + p.Socket
	c, err := client.New(ctx, addr)
	if err != nil {
		return nil, err
	}
	e := &Engine{Client: c, Kind: Embedded, Addr: "embedded engine (" + addr + ")", RuncLog: filepath.Join(p.Root, "runc-overlayfs", "executor", "runc-log.json"), Cores: HostCores()}
	if p.Rootless {
		e.Addr = "embedded rootless engine (" + addr + ")"
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := e.probe(pctx); err != nil {
		c.Close()
		return nil, err
	}
	return e, nil
}

// Preflight checks what the embedded engine needs and says how to get it.
func Preflight(o Options) (buildkitd string, err error) {
	if _, err := exec.LookPath("runc"); err != nil {
		return "", errors.New("runc not found on PATH: the embedded engine runs build steps with it; install it (Debian/Ubuntu: apt-get install -y runc)")
	}
	if os.Geteuid() != 0 {
		if err := rootlessPreflight(o); err != nil {
			return "", err
		}
	}
	return findBuildkitd(o)
}

// rootlessPreflight checks what rootless BuildKit needs, one clear
// sentence per missing piece instead of a daemon's stack trace.
func rootlessPreflight(o Options) error {
	if _, err := exec.LookPath("rootlesskit"); err != nil {
		return errors.New("berth runs as an unprivileged user, so its engine runs rootless, under rootlesskit, which is not on PATH: install it (Debian/Ubuntu: apt-get install -y rootlesskit uidmap)")
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		return errors.New("newuidmap not found: rootless BuildKit maps user ids with it; install it (Debian/Ubuntu: apt-get install -y uidmap)")
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0): rootless BuildKit needs them; enable them with sysctl user.max_user_namespaces=15000, or run berth as root")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0): enable them with sysctl kernel.unprivileged_userns_clone=1, or run berth as root")
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if !hasSubIDs(f, u.Username, u.Uid) {
			return fmt.Errorf("no range of subordinate ids for user %s in %s: rootless BuildKit needs one; as root, add the line \"%s:100000:65536\" to %s (useradd -m writes it for new users)", u.Username, f, u.Username, f)
		}
	}
	return nil
}

func hasSubIDs(file, name, uid string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) == 3 && (f[0] == name || f[0] == uid) && f[2] != "0" {
			return true
		}
	}
	return false
}

func findBuildkitd(o Options) (string, error) {
	cands := []string{o.Buildkitd, o.getenv("BERTH_BUILDKITD")}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "buildkitd"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return p, nil
	}
	return "", errors.New("buildkitd not found (next to berth, on PATH, or in BERTH_BUILDKITD): run `make build`, which builds bin/buildkitd at the version pinned in go.mod, or `go build -o bin/buildkitd github.com/moby/buildkit/cmd/buildkitd` in berth's module")
}

// start launches buildkitd in its own session, detached from berth, so a
// Ctrl-C to berth does not kill the daemon other runs share.
func start(ctx context.Context, o Options, p Paths) error {
	bin, err := Preflight(o)
	if err != nil {
		return err
	}
	// A daemon that left a pid but does not answer is stale: stop it.
	if pid := daemonPID(p); pid > 0 {
		_ = stopPID(pid, 10*time.Second)
	}
	if err := os.MkdirAll(p.Root, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// What a killed daemon left half done goes, while none runs. A
	// rootless daemon's snapshots belong to its user namespace.
	if !p.Rootless && daemonPID(p) == 0 {
		if err := cleanSnapshots(ctx, p.Root); err != nil {
			fmt.Fprintf(logf, "--- berth could not clean the snapshots: %v\n", err)
		}
	}
	_ = os.Remove(p.Socket)
	_ = os.Remove(p.PID)
	args := []string{
		"--root", p.Root,
		"--addr", "unix://" + p.Socket,
		"--oci-worker=true",
		"--containerd-worker=false",
		"--oci-worker-gc=true",
	}
	cfg := o.Config
	if cfg == "" {
		// BuildKit runs every ready step at once by default: hundreds of
		// go builds of a large project would each take cores and memory
		// at the same time. A few per core keep the machine usable.
		//
		// BuildKit looks again for QEMU emulators (ten test executions) on
		// a ListWorkers 20 s after the last look; berth asks on every
		// build, and never emulates: looking once is enough (a warm no-op
		// is 0.25 s, of which the look took 0.05 s).
		cfg = filepath.Join(p.Dir, "buildkitd.toml")
		toml := fmt.Sprintf("# Written by berth for its embedded engine.\n[system]\n  platformsCacheMaxAge = \"8760h\"\n[worker.oci]\n  max-parallelism = %d\n", 2*HostCores())
		if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
			return err
		}
	}
	args = append(args, "--config", cfg)
	name := bin
	var env []string
	if p.Rootless {
		// As DESIGN.md found: host network, /etc copied up, the host's
		// loopback hidden; USER and XDG_RUNTIME_DIR always set.
		if err := os.MkdirAll(filepath.Dir(p.Socket), 0o700); err != nil {
			return err
		}
		rk, _ := exec.LookPath("rootlesskit")
		args = append([]string{"--net=host", "--copy-up=/etc", "--disable-host-loopback", bin}, args...)
		name = rk
		u, err := user.Current()
		if err != nil {
			return err
		}
		env = append(os.Environ(), "USER="+u.Username, "XDG_RUNTIME_DIR="+p.Runtime, "HOME="+u.HomeDir)
	}
	fmt.Fprintf(logf, "--- berth starts %s %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(p.PID, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if e, err := dialEmbedded(ctx, p, time.Second); err == nil {
			e.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("buildkitd exited while starting (%v); its log %s ends with:\n%s", err, p.Log, tail(p.Log, 15))
		case <-ctx.Done():
			_ = stopPID(pid, 5*time.Second)
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = stopPID(pid, 5*time.Second)
			return fmt.Errorf("buildkitd did not become ready in 60s; see %s:\n%s", p.Log, tail(p.Log, 15))
		}
	}
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// daemonPID is the pid in p's pid file if that process is alive and is
// this engine's daemon (or the rootlesskit that runs it): its command line
// holds `--root` and p's root (the same directory, whatever the path that
// reached it). After a reboot, or once the daemon died and its pid was
// reused, the file names some other process, which berth must not signal;
// 0 then, or when there is no pid.
func daemonPID(p Paths) int {
	pid := readPID(p.PID)
	if pid <= 0 || !alive(pid) || zombie(pid) {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	root, rootErr := os.Stat(p.Root)
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "--root" {
			continue
		}
		if args[i+1] == p.Root {
			return pid
		}
		if st, err := os.Stat(args[i+1]); rootErr == nil && err == nil && os.SameFile(root, st) {
			return pid
		}
	}
	return 0
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func stopPID(pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) || zombie(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// zombie reports whether pid has exited but not been reaped (its parent,
// an earlier berth, may be gone).
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// LogTail returns the last n lines of the embedded engine's log, indented,
// for an error message; empty if there is no log.
func LogTail(o Options, n int) string {
	p, err := EnginePaths(o)
	if err != nil {
		return ""
	}
	return tail(p.Log, n)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// Status describes the embedded engine.
type Status struct {
	// Mode is "root" or "rootless".
	Mode    string
	Running bool
	PID     int
	Paths   Paths
	Version string
	Workers []string
}

// EmbeddedStatus reports whether the embedded engine runs.
func EmbeddedStatus(ctx context.Context, o Options) (*Status, error) {
	p, err := EnginePaths(o)
	if err != nil {
		return nil, err
	}
	st := &Status{Paths: p, PID: daemonPID(p), Mode: "root"}
	if p.Rootless {
		st.Mode = "rootless"
	}
	e, err := dialEmbedded(ctx, p, 2*time.Second)
	if err != nil {
		return st, nil
	}
	defer e.Close()
	st.Running = true
	if info, err := e.Client.Info(ctx); err == nil {
		st.Version = info.BuildkitVersion.Version
	}
	if ws, err := e.Client.ListWorkers(ctx); err == nil {
		for _, w := range ws {
			var ps []string
			for _, pf := range w.Platforms {
				ps = append(ps, pf.OS+"/"+pf.Architecture+suffix(pf.Variant))
			}
			st.Workers = append(st.Workers, w.ID+" "+strings.Join(ps, ","))
		}
	}
	return st, nil
}

func suffix(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}

// Stop stops the embedded engine, waiting for concurrent starts.
func Stop(ctx context.Context, o Options) (bool, error) {
	p, err := EnginePaths(o)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(p.Dir); err != nil {
		return false, nil
	}
	unlock, err := export.Lock(ctx, p.Lock)
	if err != nil {
		return false, err
	}
	defer unlock()
	pid := daemonPID(p)
	stopped := false
	if pid > 0 {
		if err := stopPID(pid, 15*time.Second); err != nil {
			return false, fmt.Errorf("stop buildkitd (pid %d): %w", pid, err)
		}
		stopped = true
	}
	_ = os.Remove(p.Socket)
	_ = os.Remove(p.PID)
	return stopped, nil
}

// Prune frees the engine's build cache.
func (e *Engine) Prune(ctx context.Context) (int64, error) {
	ch := make(chan client.UsageInfo)
	var freed int64
	done := make(chan struct{})
	go func() {
		for u := range ch {
			freed += u.Size
		}
		close(done)
	}()
	err := e.Client.Prune(ctx, ch, client.PruneAll)
	close(ch)
	<-done
	return freed, err
}
