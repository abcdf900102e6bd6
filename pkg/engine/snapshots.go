package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	bolt "go.etcd.io/bbolt"
)

// cleanSnapshots removes what an engine that was killed left in its
// overlay snapshotter: snapshot directories its metadata never recorded.
// containerd's overlay snapshotter renames a new snapshot's directory
// into place before it commits the snapshot's id; killed in between, the
// next engine takes the same id and fails every step that needs it ("failed
// to rename: file exists"). The snapshotter's own cleanup does remove
// such directories, but BuildKit runs it only from its metadata's garbage
// collection, which may come after the first colliding create; so berth
// runs it, with the engine stopped, before it starts one. A rootless
// engine's snapshots belong to its user namespace and are not cleaned.
func cleanSnapshots(ctx context.Context, root string) error {
	dir := filepath.Join(root, "runc-overlayfs", "snapshots")
	if _, err := os.Stat(filepath.Join(dir, "metadata.db")); errors.Is(err, os.ErrNotExist) {
		return nil // a new engine, or another snapshotter
	}
	// The engine is stopped: the database is free. Were it not, waiting
	// a little beats hanging.
	ms, err := storage.NewMetaStore(filepath.Join(dir, "metadata.db"), func(o *bolt.Options) error {
		o.Timeout = 2 * time.Second
		return nil
	})
	if err != nil {
		return err
	}
	sn, err := overlay.NewSnapshotter(dir, overlay.AsynchronousRemove, overlay.WithMetaStore(ms))
	if err != nil {
		ms.Close()
		return err
	}
	defer sn.Close() // closes ms
	cleaner, ok := sn.(interface{ Cleanup(context.Context) error })
	if !ok {
		return nil
	}
	return cleaner.Cleanup(ctx)
}
