package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/berthbuild/berth/pkg/diag"
)

// Version is berth's own version, set at link time.
var Version = "dev"

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// Main runs berth with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
		if err == nil {
			return code
		}
	}
	if err != nil && err.Error() != "" {
		wd, _ := os.Getwd()
		var l *diag.List
		var d *diag.Error
		if errors.As(err, &l) || errors.As(err, &d) {
			diag.Print(stderr, err, wd)
		} else {
			fmt.Fprintf(stderr, "berth: %v\n", err)
		}
	}
	return code
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Declarative builds for Go services: CUE in; images, binaries, Dockerfiles and systemd units out",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())}
	})
	root.AddCommand(
		newValidate(stdout),
		newPlan(stdout),
		newInit(stdout),
		newBuild(stdout, stderr),
		newGen(stdout),
		newEngine(stdout),
	)
	return root
}

// dirArg returns the optional DIR argument.
func dirArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "."
}
