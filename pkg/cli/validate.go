package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/berthbuild/berth/pkg/berth"
)

func newValidate(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a project's config and report every mistake with its file:line:col",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := berth.Validate(cmd.Context(), berth.Options{Dir: dirArg(args)})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %s, %s\n", p.Name, plural(len(p.Services), "service"), plural(p.Targets(), "target"))
			return nil
		},
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
