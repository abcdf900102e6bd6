// Command berth builds Go services declared in CUE.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/berthbuild/berth/pkg/berth"
	"github.com/berthbuild/berth/pkg/cli"
)

func main() {
	// BuildKit's client libraries log through logrus; their warnings
	// (e.g. "failed check for fsverity support") are not the user's business.
	logrus.SetLevel(logrus.ErrorLevel)
	berth.TuneGC()
	// BERTH_CPUPROFILE=FILE writes a CPU profile of the run (go tool
	// pprof reads it), as BERTH_TRACE=1 prints its phases.
	var prof *os.File
	if name := os.Getenv("BERTH_CPUPROFILE"); name != "" {
		if f, err := os.Create(name); err == nil && pprof.StartCPUProfile(f) == nil {
			prof = f
		}
	}
	code := run()
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	os.Exit(code)
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
