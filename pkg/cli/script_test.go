package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/berthbuild/berth/pkg/cli"
)

// TestMain lets the test binary run as the berth command inside scripts,
// as cue-lang/cue's cmd/cue/cmd/script_test.go does for cue.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"berth": func() {
			os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
		},
	})
}

// TestScript runs testdata/script/*.txtar. Each script holds the project it
// checks (berth.cue, go.mod and the main packages `berth plan` needs).
//
// To regenerate the expected output of the cmp commands from what berth
// prints now, run
//
//	BERTH_UPDATE_SCRIPTS=1 go test ./pkg/cli -run TestScript
//
// and read the diff: it is the test's claim about berth's messages.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                filepath.Join("testdata", "script"),
		UpdateScripts:      os.Getenv("BERTH_UPDATE_SCRIPTS") == "1",
		RequireUniqueNames: true,
		Setup: func(e *testscript.Env) error {
			// Keep git from finding a repository above $WORK, so that
			// `berth plan` sees no version or revision, and pin the
			// build date and Go environment the plan records.
			e.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(e.WorkDir))
			e.Setenv("SOURCE_DATE_EPOCH", "1700000000")
			e.Setenv("GOPROXY", "https://proxy.golang.org,direct")
			e.Setenv("GOSUMDB", "sum.golang.org")
			e.Setenv("GOPRIVATE", "")
			return nil
		},
	})
}
