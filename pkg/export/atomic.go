package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// TempDir makes a temporary directory next to dest, on the same file
// system, so it can be renamed into place.
func TempDir(dest string) (string, error) {
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("output directory %s: %w", parent, err)
	}
	d, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("output directory %s: %w", parent, err)
	}
	return d, nil
}

// ReplaceDir moves the directory tmp to dest. An existing dest is swapped
// out in one atomic exchange, then removed.
func ReplaceDir(tmp, dest string) error {
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		// tmp now holds the old contents.
		return os.RemoveAll(tmp)
	case errors.Is(err, unix.ENOENT):
		return os.Rename(tmp, dest)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		// No RENAME_EXCHANGE on this file system: move aside, then in.
		old := tmp + ".old"
		if err := os.Rename(dest, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, dest); err != nil {
			_ = os.Rename(old, dest)
			return err
		}
		return os.RemoveAll(old)
	}
	return fmt.Errorf("replace %s: %w", dest, err)
}

// WriteFile writes a file atomically: temp file, fsync, rename.
func WriteFile(name string, data []byte, perm os.FileMode) error {
	return WriteFileFrom(name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// UpdateFile writes a file atomically (see WriteFile) unless it is
// already a regular file with that content and those permissions: an
// unchanged output keeps its inode and modification time, and costs a
// read instead of an fsync. It reports whether it wrote.
func UpdateFile(name string, data []byte, perm os.FileMode) (bool, error) {
	if st, err := os.Lstat(name); err == nil && st.Mode().IsRegular() && st.Mode().Perm() == perm.Perm() && st.Size() == int64(len(data)) {
		if old, err := os.ReadFile(name); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	return true, WriteFile(name, data, perm)
}

// WriteFileFrom writes a file atomically from a writer function.
func WriteFileFrom(name string, perm os.FileMode, write func(io.Writer) error) error {
	a, err := newAtomicFile(name, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := write(a); err != nil {
		a.abort()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Lock takes an exclusive lock on path (created if missing), waiting for
// the other berth processes that hold it until ctx ends; call the returned
// func to release it.
func Lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SpaceLeft reports the bytes available to unprivileged writers in the
// file system that holds path, or -1 when it cannot tell.
func SpaceLeft(path string) int64 {
	var st unix.Statfs_t
	for p := path; ; p = filepath.Dir(p) {
		if err := unix.Statfs(p, &st); err == nil {
			return int64(st.Bavail) * int64(st.Bsize)
		}
		if p == filepath.Dir(p) {
			return -1
		}
	}
}

// NewAtomicFile returns a file that is written next to name and renamed
// to it by a successful Close; a failed write or sync leaves nothing.
func NewAtomicFile(name string) (io.WriteCloser, error) {
	return newAtomicFile(name, 0o644)
}

func newAtomicFile(name string, perm os.FileMode) (*atomicFile, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &atomicFile{File: f, dest: name, perm: perm}, nil
}

type atomicFile struct {
	*os.File
	dest string
	perm os.FileMode
}

func (a *atomicFile) abort() {
	a.File.Close()
	os.Remove(a.File.Name())
}

// Close syncs, sets the mode and renames into place; on any failure the
// temporary file is removed.
func (a *atomicFile) Close() error {
	err := a.File.Sync()
	if cerr := a.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(a.File.Name(), a.perm)
	}
	if err == nil {
		err = os.Rename(a.File.Name(), a.dest)
	}
	if err != nil {
		os.Remove(a.File.Name())
	}
	return err
}
