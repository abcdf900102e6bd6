package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A report rendered again from saved results (-report-from) shows the
// go build flags the run measured with (the floor's command and the
// hand-written Dockerfile carry them) and the run's host, not the
// renderer's.
func TestResultsRoundTrip(t *testing.T) {
	r := newResults(config{n: 2, runs: 1}, time.Unix(0, 0).UTC(), "/repo", "/bin/buildkitd")
	r.proj = &project{Dir: "/p", Services: []string{"svc-01", "svc-02"}, Flags: []string{"-trimpath", "-ldflags=-s -w"}}
	r.host = hostInfo{Machine: "64 cores (nproc), a machine elsewhere", Go: "go version go1.0 plan9/mips", BuildKit: "v0.1.0", Daemon: "buildkitd v0.1.0"}
	path := filepath.Join(t.TempDir(), "results.json")
	if err := r.save(path); err != nil {
		t.Fatal(err)
	}
	got, err := loadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.proj == nil || !slices.Equal(got.proj.Flags, r.proj.Flags) || !slices.Equal(got.proj.Services, r.proj.Services) {
		t.Fatalf("loaded project %+v, want the flags and services saved", got.proj)
	}
	if got.host != r.host {
		t.Errorf("loaded host %+v, want the run's %+v", got.host, r.host)
	}
	if rep, err := got.report(""); err != nil || !strings.Contains(rep, "- **Machine:** 64 cores (nproc), a machine elsewhere\n") || !strings.Contains(rep, "- **Go:** go version go1.0 plan9/mips\n") || !strings.Contains(rep, "v0.1.0 (go.mod; the daemon, /bin/buildkitd, is built from that module and reports `buildkitd v0.1.0`)") {
		t.Errorf("the report, rendered again, does not describe the run's host (err %v):\n%.600s", err, rep)
	}
	if rep := got.method(); !strings.Contains(rep, "go build -trimpath '-ldflags=-s -w' -o out/") {
		t.Errorf("the method, rendered again, lost the flags:\n%s", rep)
	}
}
