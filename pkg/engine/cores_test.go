package engine

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestHostCoresFollowsGOMAXPROCS runs this test binary again with
// GOMAXPROCS=1: the cores berth gives its engine's steps must be those
// the process may use, as go build's -p counts them, not every CPU of the
// machine (runtime.NumCPU, 2 or more on the machines tests run on).
func TestHostCoresFollowsGOMAXPROCS(t *testing.T) {
	if os.Getenv("BERTH_TEST_PRINT_CORES") == "1" {
		os.Stdout.WriteString(strconv.Itoa(HostCores()) + "\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostCoresFollowsGOMAXPROCS$")
	cmd.Env = append(os.Environ(), "BERTH_TEST_PRINT_CORES=1", "GOMAXPROCS=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "1" {
		t.Errorf("HostCores with GOMAXPROCS=1 = %s, want 1", got)
	}
	if HostCores() < 1 {
		t.Errorf("HostCores = %d", HostCores())
	}
}
