package verify

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// build compiles a tiny program with the host's go for the given env.
func build(t *testing.T, env []string, flags ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	// Small on purpose: each platform compiles what it imports. The
	// cgo case needs net, which links libc dynamically.
	src := "package main\n\nimport \"os\"\n\nfunc main() { os.Exit(0) }\n"
	for _, e := range env {
		if e == "CGO_ENABLED=1" {
			src = "package main\n\nimport (\"fmt\"; \"net\")\n\nfunc main() { fmt.Println(net.ParseIP(\"127.0.0.1\")) }\n"
		}
	}
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/v\n\ngo 1.21\n"), 0o644)
	out := filepath.Join(dir, "bin")
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"GOFLAGS=", "GOTOOLCHAIN=local"}, env...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", env, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBinary(t *testing.T) {
	static := []string{"CGO_ENABLED=0"}
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		want  Want
		err   string // "" when it must pass
	}{
		{"static linux/amd64", append(static, "GOOS=linux", "GOARCH=amd64"), []string{"-trimpath"}, Want{GOOS: "linux", GOARCH: "amd64"}, ""},
		{"arm64 binary for an amd64 target", append(static, "GOOS=linux", "GOARCH=arm64"), []string{"-trimpath"}, Want{GOOS: "linux", GOARCH: "amd64"}, "ELF machine"},
		{"arm/v7", append(static, "GOOS=linux", "GOARCH=arm", "GOARM=7"), []string{"-trimpath"}, Want{GOOS: "linux", GOARCH: "arm", GOARM: "7"}, ""},
		{"arm/v6 binary for a v7 target", append(static, "GOOS=linux", "GOARCH=arm", "GOARM=6"), []string{"-trimpath"}, Want{GOOS: "linux", GOARCH: "arm", GOARM: "7"}, "GOARM"},
		{"without -trimpath", append(static, "GOOS=linux", "GOARCH=amd64"), nil, Want{GOOS: "linux", GOARCH: "amd64"}, "-trimpath"},
		{"windows PE", append(static, "GOOS=windows", "GOARCH=amd64"), []string{"-trimpath"}, Want{GOOS: "windows", GOARCH: "amd64"}, ""},
		{"darwin Mach-O", append(static, "GOOS=darwin", "GOARCH=arm64"), []string{"-trimpath"}, Want{GOOS: "darwin", GOARCH: "arm64"}, ""},
		{"an ELF where a PE is wanted", append(static, "GOOS=linux", "GOARCH=amd64"), []string{"-trimpath"}, Want{GOOS: "windows", GOARCH: "amd64"}, "not a PE"},
		{"dynamically linked with cgo off", []string{"CGO_ENABLED=1", "GOOS=linux", "GOARCH=amd64"}, []string{"-trimpath"}, Want{GOOS: "linux", GOARCH: "amd64"}, "dynamically linked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Binary(build(t, tc.env, tc.flags...), tc.want)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Errorf("accepted, want an error about %s", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Errorf("error %q does not mention %s", err, tc.err)
			}
		})
	}
}
