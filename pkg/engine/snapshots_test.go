package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
)

// A snapshot directory the metadata never recorded (the engine was
// killed between the rename and the commit) is removed; recorded ones
// stay, and the next snapshot takes the freed id.
func TestCleanSnapshots(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "runc-overlayfs", "snapshots")
	sn, err := overlay.NewSnapshotter(dir, overlay.AsynchronousRemove)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "kept", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(dir, "snapshots", "1")
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("the snapshotter's first snapshot is not %s: %v", kept, err)
	}
	orphans := []string{filepath.Join(dir, "snapshots", "2"), filepath.Join(dir, "snapshots", "new-123")}
	for _, o := range orphans {
		if err := os.MkdirAll(filepath.Join(o, "fs"), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	if err := cleanSnapshots(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a recorded snapshot was removed: %v", err)
	}
	for _, o := range orphans {
		if _, err := os.Stat(o); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", o, err)
		}
	}
	sn, err = overlay.NewSnapshotter(dir, overlay.AsynchronousRemove)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if _, err := sn.Prepare(ctx, "next", ""); err != nil {
		t.Errorf("the next snapshot after cleaning: %v", err)
	}
	// No engine state yet: nothing to do.
	if err := cleanSnapshots(ctx, t.TempDir()); err != nil {
		t.Errorf("a new engine's root: %v", err)
	}
}
