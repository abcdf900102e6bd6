package berth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berthbuild/berth/pkg/export"
)

// Work a warm build need not do again. A binary taken from an image is a
// hard link to the file extracted from its layer, so an unchanged binary
// is the same file (device, inode, size, modification time) from build to
// build: berth remembers, under its cache, the files it has verified and
// the bundles it wrote from them, and skips reading them again. Anything
// that changes a file changes its key, and the work is done again.

// fileKey identifies a file's content by its identity and metadata; ""
// when it cannot be read.
func fileKey(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d", sys.Dev, sys.Ino, st.Size(), st.ModTime().UnixNano())
}

// memo is a set of keys of work done, one small file per key.
type memo struct{ dir string }

func (b *builder) memo(kind string) memo {
	return memo{filepath.Join(b.cacheDir, "seen", kind)}
}

func (m memo) path(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return filepath.Join(m.dir, hex.EncodeToString(h.Sum(nil)[:16]))
}

// done reports whether the work named by parts was recorded; a part that
// is "" (an unreadable file) is never done.
func (m memo) done(parts ...string) bool {
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	p := m.path(parts...)
	st, err := os.Stat(p)
	if err != nil {
		return false
	}
	renew(p, st.ModTime(), time.Now())
	return true
}

// record notes the work named by parts as done.
func (m memo) record(parts ...string) {
	for _, p := range parts {
		if p == "" {
			return
		}
	}
	if err := os.MkdirAll(m.dir, 0o755); err == nil {
		_ = export.WriteFile(m.path(parts...), nil, 0o644)
	}
}
