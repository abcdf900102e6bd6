package berth

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/export"
)

func TestTrimCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_800_000_000, 0)
	old, recent := now.Add(-trimAge-time.Minute), now.Add(-trimAge+time.Minute)
	entry := func(rel string, mtime time.Time) string {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A binaries entry is the directory named by the layer's digest.
	oldBin := filepath.Join(dir, "binaries", "aaaa")
	entry("binaries/aaaa/svc", recent) // the file's own time does not count
	if err := os.Chtimes(oldBin, old, old); err != nil {
		t.Fatal(err)
	}
	newBin := filepath.Join(dir, "binaries", "bbbb")
	entry("binaries/bbbb/svc", recent)
	if err := os.Chtimes(newBin, recent, recent); err != nil {
		t.Fatal(err)
	}
	gone := []string{
		oldBin,
		entry("golist/k1.json", old),
		entry("seen/verified/k2", old),
		entry("seen/bundles/k3", old),
	}
	kept := []string{
		newBin,
		entry("golist/k4.json", recent),
		entry("seen/verified/k5", recent),
		// Not trimmed, however old: the static base, and toolchains
		// younger than toolchainAge (TestTrimToolchains).
		entry("toolchain-images/blobs/sha256/k6", old),
		entry("toolchains/go1.26.8.linux-amd64/.complete", old),
		entry("static/k7/ca.pem", old),
	}
	if err := os.Chtimes(filepath.Join(dir, "toolchains", "go1.26.8.linux-amd64"), recent, recent); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "oci", "cccc")
	entry("oci/cccc/images/index.json", recent)
	if err := os.Chtimes(store, old, old); err != nil {
		t.Fatal(err)
	}
	gone = append(gone, store)

	if err := trimCache(dir, now); err != nil {
		t.Fatal(err)
	}
	for _, p := range gone {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: not trimmed (%v)", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: trimmed: %v", p, err)
		}
	}

	// Trimmed less than trimEvery ago: not again, though an entry aged.
	aged := entry("golist/k8.json", old)
	if err := trimCache(dir, now.Add(trimEvery-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(aged); err != nil {
		t.Errorf("trimmed again within %v: %v", trimEvery, err)
	}
	if err := trimCache(dir, now.Add(trimEvery+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(aged); !os.IsNotExist(err) {
		t.Errorf("not trimmed after %v: %v", trimEvery, err)
	}
}

func TestUsedRenewsOldEntries(t *testing.T) {
	p := filepath.Join(t.TempDir(), "entry")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	mtime := func() time.Time {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.ModTime()
	}
	// Used within touchEvery: left as it is (a warm build writes nothing).
	fresh := now.Add(-touchEvery + time.Minute)
	os.Chtimes(p, fresh, fresh)
	used(p, now)
	if !mtime().Equal(fresh) {
		t.Errorf("renewed an entry used %v ago", now.Sub(fresh))
	}
	stale := now.Add(-touchEvery - time.Minute)
	os.Chtimes(p, stale, stale)
	used(p, now)
	if !mtime().Equal(now) {
		t.Errorf("entry used %v ago: mtime %v, want %v", now.Sub(stale), mtime(), now)
	}
}

// A memo that is consulted stays: done renews it.
func TestMemoDoneRenews(t *testing.T) {
	m := memo{filepath.Join(t.TempDir(), "seen", "verified")}
	m.record("k", "v")
	p := m.path("k", "v")
	long := time.Now().Add(-trimAge)
	if err := os.Chtimes(p, long, long); err != nil {
		t.Fatal(err)
	}
	if !m.done("k", "v") {
		t.Fatal("recorded work not done")
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(st.ModTime()) > time.Minute {
		t.Errorf("consulted memo keeps its time %v", st.ModTime())
	}
}

// A toolchain unused for toolchainAge goes: its marker, the blobs only it
// reaches, and its copy for the Docker engine. The toolchains in use, and
// blobs of one being packed, stay.
func TestTrimToolchains(t *testing.T) {
	dir := t.TempDir()
	store := toolchainImages(dir)
	now := time.Unix(1_800_000_000, 0)
	old, recent := now.Add(-toolchainAge-time.Hour), now.Add(-trimAge-time.Hour)
	// Two toolchains, packed long ago; one of them still in use.
	pack := func(name string, used time.Time) (marker string, blobs []string) {
		t.Helper()
		layer, err := putJSON(store, ocispecs.MediaTypeImageLayer, name+" layer")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := putJSON(store, ocispecs.MediaTypeImageConfig, name+" config")
		if err != nil {
			t.Fatal(err)
		}
		man, err := putJSON(store, ocispecs.MediaTypeImageManifest, ocispecs.Manifest{MediaType: ocispecs.MediaTypeImageManifest, Config: cfg, Layers: []ocispecs.Descriptor{layer}})
		if err != nil {
			t.Fatal(err)
		}
		marker = filepath.Join(store, toolchainMarker+name)
		if err := os.WriteFile(marker, []byte(man.Digest.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, d := range []ocispecs.Descriptor{layer, cfg, man} {
			p := export.BlobPath(store, d)
			blobs = append(blobs, p)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(marker, used, used); err != nil {
			t.Fatal(err)
		}
		return marker, blobs
	}
	gone, goneBlobs := pack("go1.25", old)
	kept, keptBlobs := pack("go1.26", recent)
	// A toolchain being packed: its layer is written, its marker is not.
	packing, err := putJSON(store, ocispecs.MediaTypeImageLayer, "go1.27 layer")
	if err != nil {
		t.Fatal(err)
	}
	just := now.Add(-time.Minute)
	os.Chtimes(export.BlobPath(store, packing), just, just)
	tmp := filepath.Join(store, "blobs", "sha256", ".layer-123")
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(tmp, old, old)
	copyOld := filepath.Join(dir, "toolchains", "go1.25.linux-amd64")
	copyNew := filepath.Join(dir, "toolchains", "go1.26.linux-amd64")
	for p, mt := range map[string]time.Time{copyOld: old, copyNew: recent} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}

	if err := trimCache(dir, now); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{gone, copyOld}, goneBlobs...) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: not trimmed (%v)", p, err)
		}
	}
	for _, p := range append([]string{kept, copyNew, tmp, export.BlobPath(store, packing)}, keptBlobs...) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: trimmed: %v", p, err)
		}
	}
}

// A build that finds a packed toolchain renews its marker under the
// toolchains' lock; a trim takes that lock and judges the marker after: a
// toolchain found while a trim starts is kept.
func TestTrimToolchainsWaitsForLock(t *testing.T) {
	dir := t.TempDir()
	store := toolchainImages(dir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := now.Add(-toolchainAge - time.Hour)
	marker := filepath.Join(store, toolchainMarker+"go1.25")
	if err := os.WriteFile(marker, []byte("sha256:broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(marker, old, old); err != nil {
		t.Fatal(err)
	}
	// A build finding the toolchain holds the lock, renews the marker
	// while the trim waits, then lets go.
	if err := waitsForLock(t, store, "trimToolchains", func() error { return trimToolchains(dir, now) }, func() { used(marker, now) }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the marker renewed while the trim waited is gone: %v", err)
	}
}

// A build finds, packs or copies a toolchain under the lock a trim takes:
// while a trim holds it, the build waits.
func TestToolchainWaitsForTrim(t *testing.T) {
	goroot := fakeGoroot(t)
	dir := t.TempDir()
	pf := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	for _, c := range []struct {
		name string
		lock string
		find func() error
	}{
		{"toolchainImage", toolchainImages(dir), func() error {
			_, err := toolchainImage(context.Background(), goroot, toolchainImages(dir), pf)
			return err
		}},
		{"executableToolchain", filepath.Join(dir, "toolchains"), func() error {
			_, err := executableToolchain(context.Background(), goroot, dir)
			return err
		}},
	} {
		for _, state := range []string{"to make", "made"} {
			if err := waitsForLock(t, c.lock, c.name+" ("+state+")", c.find, func() {}); err != nil {
				t.Fatalf("%s (%s): %v", c.name, state, err)
			}
		}
	}
}

// waitsForLock holds the toolchain lock of dir while fn runs in a
// goroutine, fails the test if fn returns within 300 ms, then runs
// meanwhile, lets go of the lock, and returns fn's error.
func waitsForLock(t *testing.T, dir, name string, fn func() error, meanwhile func()) error {
	t.Helper()
	unlock, err := toolchainLock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("%s returned (%v) while the lock was held", name, err)
	case <-time.After(300 * time.Millisecond):
	}
	meanwhile()
	unlock()
	return <-done
}
