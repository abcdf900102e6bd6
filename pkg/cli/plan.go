package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berthbuild/berth/pkg/berth"
	"github.com/berthbuild/berth/pkg/dockerfile"
	"github.com/berthbuild/berth/pkg/plan"
)

func newPlan(stdout io.Writer) *cobra.Command {
	var asJSON bool
	var out string
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Print the resolved service × platform matrix",
		Long: `Print the resolved service × platform matrix: per target the Go platform,
outputs, GOMAXPROCS/GOMEMLIMIT, the go build command and environment, the
base and the output paths. --json prints the stable format documented in
docs/plan-json.md (sorted keys, one object per target).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := berth.Plan(cmd.Context(), berth.Options{Dir: dirArg(args), OutDir: out})
			if err != nil {
				return err
			}
			if asJSON {
				b, err := plan.JSON(p.Plan)
				if err != nil {
					return err
				}
				_, err = stdout.Write(b)
				return err
			}
			printPlan(stdout, p.Plan)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().StringVar(&out, "out", "dist", "output directory, relative to DIR")
	return cmd
}

func printPlan(w io.Writer, p *plan.Plan) {
	fmt.Fprintf(w, "%s %s: go %s, module %s (%s), SOURCE_DATE_EPOCH=%d\n",
		p.Project, p.Version, p.Go.Version, p.Module.Path, p.Module.Dir, p.SourceDateEpoch)
	for _, t := range p.Targets {
		fmt.Fprintf(w, "\n%s %s\n", t.Service, t.Platform)
		fmt.Fprintf(w, "  source:   %s\n", t.Source.Start)
		goarm := ""
		if t.GOARM != "" {
			goarm = " GOARM=" + t.GOARM
		}
		fmt.Fprintf(w, "  target:   GOOS=%s GOARCH=%s%s\n", t.GOOS, t.GOARCH, goarm)
		fmt.Fprintf(w, "  outputs:  %s\n", outputs(t.Outputs))
		if t.GOMAXPROCS > 0 || t.GOMEMLIMIT != "" {
			var rt []string
			if t.GOMAXPROCS > 0 {
				rt = append(rt, fmt.Sprintf("GOMAXPROCS=%d", t.GOMAXPROCS))
			}
			if t.GOMEMLIMIT != "" {
				rt = append(rt, "GOMEMLIMIT="+t.GOMEMLIMIT)
			}
			fmt.Fprintf(w, "  runtime:  %s\n", strings.Join(rt, " "))
		}
		fmt.Fprintf(w, "  base:     %s (user %d:%d)\n", t.Base, t.User, t.Group)
		fmt.Fprintf(w, "  env:      %s\n", strings.Join(t.BuildEnv, " "))
		fmt.Fprintf(w, "  build:    %s\n", dockerfile.ShellJoin(t.Command))
		for _, pp := range [][2]string{
			{"binary", t.Paths.Binary}, {"image", imagePath(t.Paths)},
			{"docker", t.Paths.Dockerfile}, {"unit", t.Paths.Unit},
		} {
			if pp[1] != "" {
				fmt.Fprintf(w, "  %-9s %s\n", pp[0]+":", pp[1])
			}
		}
	}
}

func imagePath(p plan.Paths) string {
	if p.Image == "" {
		return ""
	}
	return p.Image + " (" + p.ImageRef + ")"
}

func outputs(o plan.Outputs) string {
	var s []string
	for _, x := range []struct {
		on   bool
		name string
	}{{o.Image, "image"}, {o.Binary, "binary"}, {o.Systemd, "systemd"}, {o.Dockerfile, "dockerfile"}} {
		if x.on {
			s = append(s, x.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
