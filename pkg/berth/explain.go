package berth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/moby/buildkit/client"

	"github.com/berthbuild/berth/pkg/diag"
	"github.com/berthbuild/berth/pkg/export"
	"github.com/berthbuild/berth/pkg/plan"
)

// Explaining a failed build: the failing step's output and where its service is declared.

// record keeps the logs of failed steps, to show them with the error.
func (b *builder) record(s *client.SolveStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed == nil {
		b.failed = map[string]*failure{}
	}
	for _, v := range s.Vertexes {
		if v.Error != "" {
			f := b.failed[v.Digest.String()]
			if f == nil {
				f = &failure{}
				b.failed[v.Digest.String()] = f
			}
			f.name = v.Name
		}
	}
	for _, l := range s.Logs {
		// A step shared by several solves reports its logs to each.
		lk := fmt.Sprintf("%s %d %d %d", l.Vertex, l.Timestamp.UnixNano(), l.Stream, len(l.Data))
		if b.seenLogs[lk] {
			continue
		}
		if b.seenLogs == nil {
			b.seenLogs = map[string]bool{}
		}
		b.seenLogs[lk] = true
		k := l.Vertex.String()
		f := b.failed[k]
		if f == nil {
			f = &failure{}
			b.failed[k] = f
		}
		f.logs = append(f.logs, l.Data...)
		if len(f.logs) > 64<<10 {
			f.logs = f.logs[len(f.logs)-64<<10:]
		}
	}
}

// targetFailed records that a check of target t failed with err, and
// returns err: explain then points at the target's service.
func (b *builder) targetFailed(t *plan.Target, err error) error {
	b.mu.Lock()
	b.failedTargets = append(b.failedTargets, t)
	b.mu.Unlock()
	return err
}

// explain adds to a build error the failing step's output and the config
// position of the service it belongs to.
func (b *builder) explain(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("build canceled; nothing was written: %w", err)
	}
	var msg strings.Builder
	b.mu.Lock()
	keys := make([]string, 0, len(b.failed))
	for k, f := range b.failed {
		if f.name != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := b.failed[k]
		fmt.Fprintf(&msg, "\n%s failed", f.name)
		if logs := strings.TrimSpace(string(f.logs)); logs != "" {
			fmt.Fprintf(&msg, ":\n%s", indent(lastLines(logs, 30)))
		}
	}
	b.mu.Unlock()
	var d diag.List
	for _, src := range sourceErrors(err) {
		d.Add(src)
	}
	b.mu.Lock()
	// A check of berth's failed, though perhaps inside a solve.
	checked := len(b.failedTargets) > 0
	for _, t := range b.failedTargets {
		if t.Source.Start.File != "" {
			d.Add(&diag.Error{
				Msg: fmt.Sprintf("%s (%s) is declared here", t.Service, t.Platform),
				Pos: []diag.Pos{t.Source.Start},
			})
		}
	}
	b.mu.Unlock()
	if b.eng.RuncLog != "" && strings.Contains(err.Error(), "exit code") {
		// A step that died before running shows only "exit code: 1";
		// runc says why.
		if rl, rerr := os.ReadFile(b.eng.RuncLog); rerr == nil && int64(len(rl)) > b.runcLogAt {
			rl = rl[b.runcLogAt:]
			fmt.Fprintf(&msg, "\nthe engine's runc log (%s) ends with:\n%s", b.eng.RuncLog, indent(lastLines(strings.TrimSpace(string(rl)), 5)))
		}
	}
	if left := export.SpaceLeft(b.outDir); left >= 0 && left < 1<<20 {
		// Exporters report a full disk as a broken stream ("EOF").
		fmt.Fprintf(&msg, "\nno space left on the file system of the output directory %s (%d bytes free)", b.outDir, left)
	}
	// Only a solve's error is the engine's; berth's own checks (in a
	// solve or not), pushes and writes say what failed themselves.
	out := fmt.Errorf("%w%s", err, msg.String())
	var ne *nodeError
	if errors.As(err, &ne) && !checked {
		out = fmt.Errorf("build failed on %s: %w%s", ne.addr, err, msg.String())
	}
	if d.Len() > 0 {
		return &buildError{err: out, where: d.Errors()}
	}
	return out
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buildError is a build failure with the config positions it traces to.
type buildError struct {
	err   error
	where []error
}

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// Where returns the config positions of the failing services.
func (e *buildError) Where() []error { return e.where }
