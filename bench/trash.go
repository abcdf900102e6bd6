package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Deleting between runs. ext4 allocates inodes slowly for a minute after
// many were freed (it passes over recently deleted ones, reading their
// inode tables): measured here, extracting the toolchain's 4,210 files
// took 2.5–4.7 s of system time within a minute of deleting as many, and
// 0.4 s after 75 s. A cold run right after deleting the previous run's
// engine state (7,500 files) or build cache would pay that, which no
// fresh machine does. So the benchmark moves what it deletes between
// runs into a trash directory, one rename, and empties it when it ends;
// a run within quietAfterDelete of a deletion of its own waits first.

// quietAfterDelete is how long after deleting many files the benchmark
// waits before a measured run.
const quietAfterDelete = 75 * time.Second

type trash struct {
	dir string
	n   int
}

// lastEmptied is when a trash was last emptied (settle waits on it).
var lastEmptied time.Time

// newTrash empties what an interrupted benchmark left in dir.
func newTrash(dir string) (*trash, error) {
	t := &trash{dir: dir}
	if _, err := os.Lstat(dir); err == nil {
		if err := t.empty(); err != nil {
			return nil, err
		}
	}
	return t, os.MkdirAll(dir, 0o755)
}

// discard moves p, if it exists, into the trash.
func (t *trash) discard(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	t.n++
	err := os.Rename(p, filepath.Join(t.dir, strconv.Itoa(t.n)))
	if errors.Is(err, syscall.EXDEV) {
		return os.RemoveAll(p) // another file system: delete it now
	}
	if err != nil {
		return fmt.Errorf("discard %s: %w", p, err)
	}
	return nil
}

// empty deletes what the trash holds.
func (t *trash) empty() error {
	err := os.RemoveAll(t.dir)
	lastEmptied = time.Now()
	return err
}

// waitQuiet sleeps until quietAfterDelete has passed since the trash was
// last emptied.
func waitQuiet() {
	if lastEmptied.IsZero() {
		return
	}
	if d := time.Until(lastEmptied.Add(quietAfterDelete)); d > 0 {
		log.Printf("waiting %s: files were deleted %s ago", d.Round(time.Second), time.Since(lastEmptied).Round(time.Second))
		time.Sleep(d)
	}
}
