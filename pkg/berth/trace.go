package berth

import (
	"context"
	"fmt"
	"os"
	"time"
)

// tracer prints how long each phase of a build took when BERTH_TRACE is
// set: the first thing to look at when a build is slow.
type tracer struct {
	on    bool
	start time.Time
	last  time.Time
}

func newTracer(env Env) *tracer {
	now := time.Now()
	return &tracer{on: env.get("BERTH_TRACE") != "", start: now, last: now}
}

func (t *tracer) mark(phase string) { t.markAt(phase, time.Now()) }

// markAt ends phase at now, a time since the last mark.
func (t *tracer) markAt(phase string, now time.Time) {
	if t == nil || !t.on {
		return
	}
	fmt.Fprintf(os.Stderr, "berth: trace %-18s %7.3fs (total %.3fs)\n", phase, now.Sub(t.last).Seconds(), now.Sub(t.start).Seconds())
	t.last = now
}

type tracerKey struct{}

func withTracer(ctx context.Context, t *tracer) context.Context {
	return context.WithValue(ctx, tracerKey{}, t)
}

func tracerFrom(ctx context.Context) *tracer {
	t, _ := ctx.Value(tracerKey{}).(*tracer)
	return t
}
