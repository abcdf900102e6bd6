package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/berthbuild/berth/pkg/engine"
)

func newEngine(stdout io.Writer) *cobra.Command {
	var o engine.Options
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Manage the embedded BuildKit engine",
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether the embedded engine runs, and where",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := engine.EmbeddedStatus(cmd.Context(), o)
			if err != nil {
				return err
			}
			if !st.Running {
				fmt.Fprintf(stdout, "stopped (mode %s, state in %s)\n", st.Mode, st.Paths.Dir)
				return nil
			}
			fmt.Fprintf(stdout, "running: pid %d, BuildKit %s, mode %s\n  socket unix://%s\n  state  %s\n  log    %s\n", st.PID, st.Version, st.Mode, st.Paths.Socket, st.Paths.Root, st.Paths.Log)
			for _, w := range st.Workers {
				fmt.Fprintf(stdout, "  worker %s\n", w)
			}
			return nil
		},
	}
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop the embedded engine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stopped, err := engine.Stop(cmd.Context(), o)
			if err != nil {
				return err
			}
			if stopped {
				fmt.Fprintln(stdout, "stopped")
			} else {
				fmt.Fprintln(stdout, "not running")
			}
			return nil
		},
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Free the build cache of the engine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := engine.Connect(cmd.Context(), o)
			if err != nil {
				return err
			}
			defer e.Close()
			n, err := e.Prune(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "freed %d bytes\n", n)
			return nil
		},
	}
	engineFlags(prune, &o)
	cmd.AddCommand(status, stop, prune)
	return cmd
}
