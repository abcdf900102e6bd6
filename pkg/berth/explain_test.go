package berth

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/engine"
	"github.com/berthbuild/berth/pkg/plan"
)

// A check berth makes on this machine points at the service's
// declaration, and is not blamed on the engine; a solve's error is.
func TestExplainClientSideFailure(t *testing.T) {
	b := &builder{eng: &engine.Engine{Addr: "the embedded engine"}, outDir: t.TempDir()}
	tg := &plan.Target{Service: "api", Platform: "linux/arm64", Source: diag.Range{Start: diag.Pos{File: "berth.cue", Line: 7, Col: 2}}}
	err := b.explain(b.targetFailed(tg, errors.New("api (linux/arm64): binary check failed: not an ELF file")))
	if strings.HasPrefix(err.Error(), "build failed on") {
		t.Errorf("a check on this machine is blamed on the engine: %v", err)
	}
	var w interface{ Where() []error }
	if !errors.As(err, &w) || !strings.Contains(fmt.Sprint(w.Where()), "berth.cue:7:2") {
		t.Errorf("a failed binary check does not point at the service (berth.cue:7:2): %v", err)
	}

	// A check made in a solve's callback comes back as the solve's error.
	b = &builder{eng: &engine.Engine{Addr: "the embedded engine"}, outDir: t.TempDir()}
	err = b.explain(onNode(&node{}, b.targetFailed(tg, errors.New("api (linux/arm64): binary check failed: not an ELF file"))))
	if strings.HasPrefix(err.Error(), "build failed on") || !errors.As(err, &w) || !strings.Contains(fmt.Sprint(w.Where()), "berth.cue:7:2") {
		t.Errorf("a check in a solve's callback: %v (at %v)", err, w)
	}

	b = &builder{eng: &engine.Engine{Addr: "the embedded engine"}, outDir: t.TempDir()}
	err = b.explain(onNode(&node{opts: engine.Options{Builder: "tcp://arm:1"}}, errors.New("process did not complete")))
	if !strings.HasPrefix(err.Error(), "build failed on tcp://arm:1: process did not complete") {
		t.Errorf("a solve's error does not name its builder: %v", err)
	}
}
