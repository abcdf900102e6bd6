package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/berthbuild/berth/pkg/berth"
)

func newGen(stdout io.Writer) *cobra.Command {
	var o berth.GenOptions
	cmd := &cobra.Command{
		Use:   "gen [DIR]",
		Short: "Write a Dockerfile and a systemd unit per service, from the same plan as the build",
		Long: `Write, under the output directory, docker/<service>/Dockerfile (with its
.dockerignore) and systemd/<service>.service (with <service>.env when the
service has environment variables). --check writes nothing: it prints a
unified diff and exits 1 when the files on disk are stale.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = dirArg(args)
			res, err := berth.Gen(cmd.Context(), o)
			if err != nil {
				return err
			}
			if o.Check {
				if len(res.Stale) > 0 {
					fmt.Fprint(stdout, res.Diff)
					return &exitError{code: 1, err: fmt.Errorf("%d generated files are stale: run berth gen", len(res.Stale))}
				}
				fmt.Fprintf(stdout, "%d generated files are up to date\n", len(res.Files))
				return nil
			}
			for _, f := range res.Files {
				fmt.Fprintln(stdout, f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.OutDir, "out", "dist", "output directory, relative to DIR")
	cmd.Flags().BoolVar(&o.Check, "check", false, "write nothing; exit 1 with a diff when files on disk are stale")
	return cmd
}
