package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/berthbuild/berth/pkg/berth"
)

func newInit(stdout io.Writer) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write a starter berth.cue with one service per main package of the Go module",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := berth.Init(berth.InitOptions{Dir: dirArg(args), Force: force})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s (%s) and %s\n", r.Config, plural(len(r.Services), "service"), r.Schema)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing berth.cue")
	return cmd
}
