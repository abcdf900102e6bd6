// Package shop is shared by every service of the example monorepo.
package shop

import (
	"fmt"
	"os"
	"runtime"
)

// Version is set at link time by berth (go: stamp: version).
var Version = "unset"

// Banner describes the running binary.
func Banner(service string) string {
	return fmt.Sprintf("%s %s %s/%s GOMAXPROCS=%s GOMEMLIMIT=%s",
		service, Version, runtime.GOOS, runtime.GOARCH, os.Getenv("GOMAXPROCS"), os.Getenv("GOMEMLIMIT"))
}
