package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBundleIsReproducible(t *testing.T) {
	dir := t.TempDir()
	files := []File{
		{Name: "svc", Mode: 0o755, Data: []byte("binary")},
		{Name: "install.sh", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Name: "svc.service", Mode: 0o644, Data: []byte("[Unit]\n")},
	}
	epoch := time.Unix(1700000000, 0)
	a, b := filepath.Join(dir, "a.tar.gz"), filepath.Join(dir, "b.tar.gz")
	if _, err := WriteBundle(a, files, epoch); err != nil {
		t.Fatal(err)
	}
	// Other order, other time of day: same bytes.
	rev := []File{files[2], files[0], files[1]}
	if _, err := WriteBundle(b, rev, epoch); err != nil {
		t.Fatal(err)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ba, bb) {
		t.Fatal("the same files gave different bundles")
	}
	// Sorted, owned by root, stamped with the epoch.
	zr, err := gzip.NewReader(bytes.NewReader(ba))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tarEntries(t, zr, func(h *tar.Header, _ io.Reader) {
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: uid %d gid %d mtime %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	})
	if want := []string{"install.sh", "svc", "svc.service"}; !equal(names, want) {
		t.Errorf("entries %v, want %v", names, want)
	}
	// Up to date: not written again. Changed: written.
	if wrote, err := WriteBundle(a, files, epoch); err != nil || wrote {
		t.Errorf("an up-to-date bundle was rewritten (%v, %v)", wrote, err)
	}
	files[0].Data = []byte("binary v2")
	if wrote, err := WriteBundle(a, files, epoch); err != nil || !wrote {
		t.Errorf("a changed bundle was not rewritten (%v, %v)", wrote, err)
	}
}

// tarEntries calls each for every entry of the tar r, in order.
func tarEntries(t *testing.T, r io.Reader, each func(*tar.Header, io.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		each(h, tr)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReplaceDir(t *testing.T) {
	root := t.TempDir()
	dest := filepath.Join(root, "out")
	for i, content := range []string{"one", "two"} {
		tmp, err := TempDir(dest)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tmp, "f"), []byte(content), 0o644)
		if err := ReplaceDir(tmp, dest); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dest, "f"))
		if string(b) != content {
			t.Fatalf("round %d: %q", i, b)
		}
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 {
		t.Errorf("left behind next to the output: %v", ents)
	}
}

func TestUpdateFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "svc.service")
	wrote, err := UpdateFile(name, []byte("[Unit]\n"), 0o644)
	if err != nil || !wrote {
		t.Fatalf("first write: wrote=%v err=%v", wrote, err)
	}
	before, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if wrote, err = UpdateFile(name, []byte("[Unit]\n"), 0o644); err != nil || wrote {
		t.Fatalf("same content: wrote=%v err=%v, want it left alone", wrote, err)
	}
	after, _ := os.Stat(name)
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("same content: the file was replaced")
	}
	// Another mode, another content: written again.
	if err := os.Chmod(name, 0o600); err != nil {
		t.Fatal(err)
	}
	if wrote, err = UpdateFile(name, []byte("[Unit]\n"), 0o644); err != nil || !wrote {
		t.Fatalf("other mode: wrote=%v err=%v", wrote, err)
	}
	if st, _ := os.Stat(name); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v after the rewrite, want 0644", st.Mode().Perm())
	}
	if wrote, err = UpdateFile(name, []byte("[Unit]\nDescription=x\n"), 0o644); err != nil || !wrote {
		t.Fatalf("other content: wrote=%v err=%v", wrote, err)
	}
	if b, _ := os.ReadFile(name); string(b) != "[Unit]\nDescription=x\n" {
		t.Fatalf("content %q", b)
	}
	// A symlink to a file with the same content is replaced by the file.
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(filepath.Dir(name), "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if wrote, err = UpdateFile(link, []byte("x"), 0o644); err != nil || !wrote {
		t.Fatalf("symlink: wrote=%v err=%v", wrote, err)
	}
	if st, _ := os.Lstat(link); !st.Mode().IsRegular() {
		t.Fatal("the symlink is still there")
	}
}

// A bundle whose binary comes from its image's layer ends with the layer
// as it is: gzip readers and GNU tar read one archive, binary last.
func TestBundleWithLayer(t *testing.T) {
	dir := t.TempDir()
	epoch := time.Unix(1700000000, 0)
	bin := bytes.Repeat([]byte("binary "), 1000)
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "svc", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write(bin)
	tw.Close()
	zw.Close()
	blob := filepath.Join(dir, "blob")
	if err := os.WriteFile(blob, layer.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Name: "svc", Mode: 0o755, Layer: &Layer{Path: blob, Digest: "sha256:1"}},
		{Name: "install.sh", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Name: "svc.service", Mode: 0o644, Data: []byte("[Unit]\n")},
	}
	out := filepath.Join(dir, "b.tar.gz")
	if wrote, err := WriteBundle(out, files, epoch); err != nil || !wrote {
		t.Fatalf("WriteBundle: %v, %v", wrote, err)
	}
	data, _ := os.ReadFile(out)
	// The layer's deflate stream as it is, between its header and trailer.
	if lb := layer.Bytes(); !bytes.Contains(data, lb[10:len(lb)-8]) {
		t.Error("the bundle does not hold the layer's deflate stream as it is")
	}
	// One member: a reader that stops after the first (as streaming
	// readers do) reads everything, and its CRC and size check out.
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	if !strings.HasPrefix(zr.Comment, "berth-inputs:") {
		t.Errorf("gzip comment %q", zr.Comment)
	}
	var names []string
	tarEntries(t, zr, func(h *tar.Header, r io.Reader) {
		names = append(names, h.Name)
		if h.Name == "svc" {
			if got, _ := io.ReadAll(r); !bytes.Equal(got, bin) {
				t.Error("svc: not the layer's file")
			}
		}
	})
	if want := []string{"install.sh", "svc.service", "svc"}; !equal(names, want) {
		t.Errorf("entries %v, want %v", names, want)
	}
	if rest, err := io.ReadAll(zr); err != nil || len(rest) != 0 {
		t.Errorf("after the archive: %d bytes, %v (the trailer's CRC and size)", len(rest), err)
	}
	if _, err := zr.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a second member: %v", err)
	}
	if tarBin, err := exec.LookPath("tar"); err == nil {
		x := filepath.Join(dir, "x")
		os.Mkdir(x, 0o755)
		if b, err := exec.Command(tarBin, "-xzf", out, "-C", x).CombinedOutput(); err != nil {
			t.Fatalf("tar -xzf: %v\n%s", err, b)
		}
		if got, err := os.ReadFile(filepath.Join(x, "svc")); err != nil || !bytes.Equal(got, bin) {
			t.Errorf("tar extracted svc: %v", err)
		}
		if _, err := os.Stat(filepath.Join(x, "svc.service")); err != nil {
			t.Error(err)
		}
	}
	// The layer is an input by digest: the same one leaves the bundle, another rewrites it.
	if wrote, err := WriteBundle(out, files, epoch); err != nil || wrote {
		t.Errorf("an up-to-date bundle was rewritten (%v, %v)", wrote, err)
	}
	files[0].Layer = &Layer{Path: blob, Digest: "sha256:2"}
	if wrote, err := WriteBundle(out, files, epoch); err != nil || !wrote {
		t.Errorf("a bundle of another layer was not rewritten (%v, %v)", wrote, err)
	}
}

func TestCRC32Combine(t *testing.T) {
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	for _, cut := range []int{0, 1, 511, 4096, 99_999, 100_000} {
		a, b := data[:cut], data[cut:]
		if got, want := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b))), crc32.ChecksumIEEE(data); got != want {
			t.Errorf("cut at %d: %08x, want %08x", cut, got, want)
		}
	}
}
