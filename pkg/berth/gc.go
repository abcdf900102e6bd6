package berth

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The garbage collector's setting. CUE evaluation and LLB marshaling
// allocate many short-lived objects on a small live heap, so collecting
// less often saves CPU: berth collects less often while its live heap is
// small, aiming for a heap of gcHeapBudget, and never more often than
// GOGC=200 (GCPercent), so a project too large for the budget grows its
// heap as it did with that fixed setting. The benchmark's plan + LLB of
// 1,000 services × 3 platforms, 8 runs alternated: 1.67 core-s and
// 1.03 s against 1.79 core-s and 1.07 s with GOGC=200 (medians), at a
// peak of 177 MB against 138. cmd/compile tunes its heap the same way.
const (
	// GCPercent is the least the collector is set to: the heap grows to
	// three times what is live before the next collection.
	GCPercent = 200
	// gcMaxPercent bounds how rarely it collects: nine times the live
	// heap.
	gcMaxPercent = 800
	gcHeapBudget = 128 << 20
)

// gcPercentFor is the setting that puts the next collection at
// gcHeapBudget for a live heap of live bytes, within [GCPercent,
// gcMaxPercent].
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	p := int(min(uint64(gcHeapBudget)*100/live, 1<<20)) - 100
	return min(max(p, GCPercent), gcMaxPercent)
}

// TuneGC sets the collector for berth's work, unless GOGC is set, and
// re-sets it after every collection from the heap that collection left
// live. stop restores the previous setting and ends the tuning.
func TuneGC() (stop func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	t := &gcTuner{prev: debug.SetGCPercent(GCPercent)}
	runtime.SetFinalizer(&gcSentinel{t: t}, afterGC)
	return t.stop
}

type gcTuner struct {
	mu      sync.Mutex
	stopped bool
	prev    int
}

func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(t.prev)
	}
}

// gcSentinel is unreachable from its first collection on: its finalizer
// runs after each collection and sets it again for the next.
type gcSentinel struct{ t *gcTuner }

func afterGC(s *gcSentinel) {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.t.stopped {
		return
	}
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	if live[0].Value.Kind() == metrics.KindUint64 {
		debug.SetGCPercent(gcPercentFor(live[0].Value.Uint64()))
	}
	runtime.SetFinalizer(s, afterGC)
}
