package berth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/export"
)

// berth's cache trims itself, as Go's build cache does: what grows with
// every build (binaries extracted from changed layers, the notes of work
// done on changed files, go list answers for changed sources, the image
// stores of output directories) is deleted once unused for trimAge. A
// build trims at most once per trimEvery, when it has succeeded. Use is
// an entry's modification time, renewed when older than touchEvery, so a
// warm build writes next to nothing. A toolchain (one per Go version and
// platform, packed once) goes once unused for toolchainAge: after an
// upgrade of Go, the old one is 40 MB packed and 110 MB copied for the
// Docker engine, and packing it again costs seconds. The static base's
// files are kept.

const (
	trimAge    = 5 * 24 * time.Hour
	trimEvery  = 24 * time.Hour
	touchEvery = time.Hour
	// toolchainAge is longer than trimAge: a project on an older Go,
	// built once a fortnight, keeps its toolchain.
	toolchainAge = 30 * 24 * time.Hour
)

// trimmed are the directories of the cache whose entries are trimmed;
// "seen" holds a directory of notes per kind of work.
var trimmed = []string{"binaries", "golist", "oci", "seen/*"}

// used marks the cache entry at path as used at now.
func used(path string, now time.Time) {
	if st, err := os.Stat(path); err == nil {
		renew(path, st.ModTime(), now)
	}
}

// renew marks the entry at path, last used at mtime, as used at now.
func renew(path string, mtime, now time.Time) {
	if now.Sub(mtime) > touchEvery {
		_ = os.Chtimes(path, now, now)
	}
}

// trimStamp records when the cache was last trimmed.
const trimStamp = "trim.txt"

// trimCache deletes the entries of the cache at dir unused for trimAge,
// unless it was trimmed less than trimEvery ago.
func trimCache(dir string, now time.Time) error {
	stamp := filepath.Join(dir, trimStamp)
	if b, err := os.ReadFile(stamp); err == nil {
		if t, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			if d := now.Sub(time.Unix(t, 0)); d >= 0 && d < trimEvery {
				return nil
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The stamp first: concurrent builds do not all trim.
	if err := export.WriteFile(stamp, []byte(strconv.FormatInt(now.Unix(), 10)+"\n"), 0o644); err != nil {
		return err
	}
	var errs []error
	for _, pattern := range trimmed {
		dirs, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pattern)))
		if err != nil {
			return err
		}
		for _, d := range dirs {
			ents, err := os.ReadDir(d)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
				continue
			}
			for _, e := range ents {
				info, err := e.Info()
				if err != nil || now.Sub(info.ModTime()) <= trimAge {
					continue
				}
				if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	errs = append(errs, trimToolchains(dir, now))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trim berth's cache %s: %w", dir, err)
	}
	return nil
}

// trimToolchains deletes the toolchains unused for toolchainAge: their
// markers in the images' layout, then the blobs no other marker reaches,
// and the copies made for the Docker engine.
//
// Each part runs under its lock (toolchainLock), which a build holds
// while it finds a toolchain and renews its marker or copy, or packs or
// copies it: a toolchain a build has just found or made is never trimmed
// before its solve uses it.
func trimToolchains(dir string, now time.Time) error {
	errs := []error{trimToolchainImages(dir, now)}
	copies := filepath.Join(dir, "toolchains")
	unlock, err := toolchainLock(context.Background(), copies)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer unlock()
	ents, err := os.ReadDir(copies)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errors.Join(append(errs, err)...)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err == nil && !strings.HasPrefix(e.Name(), ".") && now.Sub(info.ModTime()) > toolchainAge {
			errs = append(errs, os.RemoveAll(filepath.Join(copies, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// toolchainLock locks the toolchain images' layout, or the Docker
// engine's toolchain copies, at dir: the lock file is next to it. In a
// cache berth may not write (a read-only file system, or another user's
// lock file) there is no lock to take, and nothing to lock out: the
// unlock does nothing.
func toolchainLock(ctx context.Context, dir string) (func(), error) {
	err := os.MkdirAll(filepath.Dir(dir), 0o755)
	if err == nil {
		var unlock func()
		if unlock, err = export.Lock(ctx, dir+".lock"); err == nil {
			return unlock, nil
		}
	}
	if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
		return func() {}, nil
	}
	return nil, err
}

// trimToolchainImages is trimToolchains' part in the images' layout.
func trimToolchainImages(dir string, now time.Time) error {
	var errs []error
	store := toolchainImages(dir)
	unlock, err := toolchainLock(context.Background(), store)
	if err != nil {
		return err
	}
	defer unlock()
	ents, err := os.ReadDir(store)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var roots []ocispecs.Descriptor
	trimmed := false
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), toolchainMarker) {
			continue
		}
		p := filepath.Join(store, e.Name())
		info, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if now.Sub(info.ModTime()) > toolchainAge {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			trimmed = true
			continue
		}
		desc, err := markerImage(store, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // gone meanwhile
		}
		if err != nil {
			return err // keep every blob rather than guess
		}
		if desc.Digest != "" { // a broken marker reaches nothing; its image is packed again
			roots = append(roots, desc)
		}
	}
	if trimmed {
		// A toolchain being packed now has blobs no marker names yet:
		// only blobs older than toolchainAge go.
		errs = append(errs, export.GCBefore(store, roots, now.Add(-toolchainAge)))
	}
	return errors.Join(errs...)
}
