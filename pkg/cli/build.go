package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berthbuild/berth/pkg/berth"
	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/engine"
)

func engineFlags(cmd *cobra.Command, o *engine.Options) {
	f := cmd.Flags()
	f.StringVar(&o.Builder, "builder", "", "BuildKit to build on: an address (unix://, tcp://, docker-container://, kube-pod://, ssh://), \"docker\" for the Docker engine's BuildKit; default $BUILDKIT_HOST, else the embedded engine")
	f.StringVar(&o.TLSCACert, "tlscacert", "", "CA certificate for a tcp:// builder")
	f.StringVar(&o.TLSCert, "tlscert", "", "client certificate for a tcp:// builder")
	f.StringVar(&o.TLSKey, "tlskey", "", "client key for a tcp:// builder")
	f.StringVar(&o.TLSServerName, "tlsservername", "", "server name expected in a tcp:// builder's certificate")
}

func newBuild(stdout, stderr io.Writer) *cobra.Command {
	var o berth.BuildOptions
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build images and binaries for every service and platform on BuildKit",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = dirArg(args)
			o.Stderr = stderr
			res, err := berth.Build(cmd.Context(), o)
			if err != nil {
				var w interface{ Where() []error }
				if errors.As(err, &w) {
					wd, _ := os.Getwd()
					fmt.Fprintf(stderr, "berth: %v\n", err)
					var l diag.List
					l.Add(w.Where()...)
					diag.Print(stderr, &l, wd)
					return &exitError{code: 1}
				}
				return err
			}
			printBuild(stdout, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Services, "service", nil, "build only this service (repeatable)")
	f.StringSliceVar(&o.Platforms, "platform", nil, "build only this platform, e.g. linux/arm64 (repeatable)")
	f.StringVar(&o.OutDir, "out", "dist", "output directory, relative to DIR")
	f.StringVar(&o.Progress, "progress", "auto", "progress output: auto, tty, plain, rawjson or quiet")
	f.BoolVar(&o.NoCache, "no-cache", false, "run every step again instead of using BuildKit's cache")
	f.StringVar(&o.Push, "push", "", "push every image to REPO/<service>:<version>")
	f.BoolVar(&o.Load, "load", false, "load every image, for the Docker engine's platform, into Docker")
	f.BoolVar(&o.OCIArchive, "oci-archive", false, "write an OCI archive per service under OUT/archives")
	f.BoolVar(&o.DockerArchive, "docker-archive", false, "write a docker-archive per service and platform under OUT/archives")
	f.StringArrayVar(&o.CacheTo, "cache-to", nil, "export the build cache, e.g. type=registry,ref=REPO/cache,mode=max or type=local,dest=DIR (repeatable)")
	f.StringArrayVar(&o.CacheFrom, "cache-from", nil, "import a build cache, e.g. type=registry,ref=REPO/cache or type=local,src=DIR (repeatable)")
	engineFlags(cmd, &o.Engine)
	// --builder takes PLATFORM=ADDRESS too, repeatable: a builder per
	// platform.
	f.Lookup("builder").Value = &builderFlag{o: &o}
	f.Lookup("builder").Usage += "; PLATFORM=ADDRESS builds that platform there (repeatable), e.g. --builder linux/arm64=tcp://arm64:1234"
	return cmd
}

// builderFlag sorts --builder values into the default builder and
// builders per platform.
type builderFlag struct {
	o    *berth.BuildOptions
	vals []string
}

func (f *builderFlag) String() string { return strings.Join(f.vals, ",") }
func (f *builderFlag) Type() string   { return "string" }
func (f *builderFlag) Set(v string) error {
	f.vals = append(f.vals, v)
	if pf, addr, ok := berth.IsPlatformBuilder(v); ok {
		if f.o.Builders == nil {
			f.o.Builders = map[string]string{}
		}
		if _, dup := f.o.Builders[pf]; dup {
			return fmt.Errorf("two builders for %s", pf)
		}
		f.o.Builders[pf] = addr
		return nil
	}
	if f.o.Engine.Builder != "" {
		return fmt.Errorf("two default builders (%s and %s); use PLATFORM=ADDRESS for a builder per platform", f.o.Engine.Builder, v)
	}
	f.o.Engine.Builder = v
	return nil
}

func printBuild(w io.Writer, r *berth.BuildResult) {
	wd, _ := os.Getwd()
	rel := func(p string) string { return diag.Pos{File: p}.Rel(wd).File }
	if r.Layout != "" {
		fmt.Fprintf(w, "images (OCI layout %s):\n", rel(r.Layout))
		for _, im := range r.Images {
			fmt.Fprintf(w, "  %s  %s\n", im.Ref, im.Digest)
		}
	}
	if len(r.Binaries) > 0 {
		fmt.Fprintf(w, "binaries:\n")
		for _, b := range r.Binaries {
			fmt.Fprintf(w, "  %s\n", rel(b))
		}
	}
	if len(r.Generated) > 0 {
		fmt.Fprintf(w, "generated:\n")
		for _, g := range r.Generated {
			fmt.Fprintf(w, "  %s\n", rel(g))
		}
	}
	if len(r.Bundles) > 0 {
		fmt.Fprintf(w, "bare-metal bundles:\n")
		for _, g := range r.Bundles {
			fmt.Fprintf(w, "  %s\n", rel(g))
		}
	}
	for _, a := range r.Archives {
		fmt.Fprintf(w, "archive: %s\n", rel(a))
	}
	for _, p := range r.Pushed {
		fmt.Fprintf(w, "pushed: %s\n", p)
	}
	for _, l := range r.Loaded {
		fmt.Fprintf(w, "loaded: %s\n", l)
	}
}
