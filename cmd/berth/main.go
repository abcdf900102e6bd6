// Command berth builds Go services declared in CUE.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/berthbuild/berth/pkg/berth"
	"github.com/berthbuild/berth/pkg/cli"
)

func main() {
	// BuildKit's client libraries log through logrus; their warnings
	// (e.g. "failed check for fsverity support") are not the user's business.
	logrus.SetLevel(logrus.ErrorLevel)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(berth.GCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
