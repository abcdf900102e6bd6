package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A pid file that names some other process (the daemon died and its pid
// was reused, or the machine rebooted) is not the engine's: berth must not
// stop that process. Only a live process run with `--root` and this
// engine's root is.
func TestDaemonPID(t *testing.T) {
	dir := t.TempDir()
	p := Paths{Root: filepath.Join(dir, "root"), PID: filepath.Join(dir, "buildkitd.pid")}
	run := func(args ...string) int {
		t.Helper()
		cmd := exec.Command("sh", append([]string{"-c", "sleep 60; :", "sh"}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Process.Pid
	}
	write := func(pid int) {
		t.Helper()
		if err := os.WriteFile(p.PID, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := daemonPID(p); got != 0 {
		t.Errorf("no pid file: daemonPID = %d, want 0", got)
	}
	other := run("--addr", "unix:///x.sock")
	write(other)
	if got := daemonPID(p); got != 0 {
		t.Errorf("pid file names an unrelated process: daemonPID = %d, want 0", got)
	}
	elsewhere := run("--root", filepath.Join(dir, "other-root"))
	write(elsewhere)
	if got := daemonPID(p); got != 0 {
		t.Errorf("pid file names another engine's daemon: daemonPID = %d, want 0", got)
	}
	ours := run("--root", p.Root, "--addr", "unix:///x.sock")
	write(ours)
	if got := daemonPID(p); got != ours {
		t.Errorf("pid file names this engine's daemon: daemonPID = %d, want %d", got, ours)
	}
	// rootlesskit runs the daemon: its own flags and the daemon's path
	// come first.
	rootless := run("--net=host", "--copy-up=/etc", "/x/buildkitd", "--root", p.Root)
	write(rootless)
	if got := daemonPID(p); got != rootless {
		t.Errorf("pid file names this engine's rootlesskit: daemonPID = %d, want %d", got, rootless)
	}
	// The same root through another path (a symlinked home).
	if err := os.MkdirAll(p.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	viaLink := run("--root", filepath.Join(link, "root"))
	write(viaLink)
	if got := daemonPID(p); got != viaLink {
		t.Errorf("pid file names this engine's daemon, its root reached through a symlink: daemonPID = %d, want %d", got, viaLink)
	}
	write(1 << 22) // no such process
	if got := daemonPID(p); got != 0 {
		t.Errorf("pid file names no process: daemonPID = %d, want 0", got)
	}
}
