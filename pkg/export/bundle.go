package export

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// File is one entry of a bundle.
type File struct {
	Name string
	Mode int64
	Data []byte
	// Layer, when set, holds the file instead of Data: see Layer.
	Layer *Layer
}

// Layer is an image layer, a gzip-compressed tar, whose only entry is a
// bundle's file with the bundle's owner (root), mode and time (the
// binary's layer of an image berth built): the bundle ends with the
// layer's deflate stream as it is, instead of compressing the file again
// (see writeWithLayer); the tar it holds is the bundle's entries then the
// layer's one. The caller checks the layer fits (LayerFits).
type Layer struct {
	Path   string // the blob
	Digest string // of the blob, for the bundle's inputs
}

// bundleLevel is the bundles' gzip level. With klauspost/compress, level 2
// gives a Go binary the size the standard library's level 1 gives, in 65%
// of its time (and a fifth of the default level's, for 6% more bytes): a
// build writes a bundle per target.
const bundleLevel = 2

// WriteBundle writes a deterministic .tar.gz (see bundleLevel): entries sorted by name, owned by
// root, every time set to mtime, and no name or time in the gzip header, so the same files give the same sha256 on every machine;
// a file from a Layer comes last. The
// gzip comment holds a hash of the inputs: an up-to-date bundle is left
// as it is, and wrote reports whether it was written.
func WriteBundle(path string, files []File, mtime time.Time) (wrote bool, err error) {
	fs := append([]File(nil), files...)
	sort.SliceStable(fs, func(i, j int) bool {
		if (fs[i].Layer != nil) != (fs[j].Layer != nil) {
			return fs[j].Layer != nil
		}
		return fs[i].Name < fs[j].Name
	})
	var layer *File
	if n := len(fs); n > 0 && fs[n-1].Layer != nil {
		layer, fs = &fs[n-1], fs[:n-1]
		if len(fs) > 0 && fs[len(fs)-1].Layer != nil {
			return false, fmt.Errorf("%s: more than one file from a layer", path)
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "berth bundle v4 %d\n", mtime.Unix())
	for _, f := range fs {
		fmt.Fprintf(h, "%s %o %d\n", f.Name, f.Mode, len(f.Data))
		h.Write(f.Data)
	}
	if layer != nil {
		fmt.Fprintf(h, "%s %o layer %s\n", layer.Name, layer.Mode, layer.Layer.Digest)
	}
	comment := "berth-inputs:" + hex.EncodeToString(h.Sum(nil))
	if old, err := os.Open(path); err == nil {
		zr, err := gzip.NewReader(old)
		same := err == nil && zr.Comment == comment
		old.Close()
		if same {
			return false, nil
		}
	}
	if layer != nil {
		return true, WriteFileFrom(path, 0o644, func(w io.Writer) error {
			return writeWithLayer(w, comment, fs, layer.Layer.Path, mtime)
		})
	}
	return true, WriteFileFrom(path, 0o644, func(w io.Writer) error {
		gz, err := gzip.NewWriterLevel(w, bundleLevel)
		if err != nil {
			return err
		}
		gz.Comment = comment
		tw := tar.NewWriter(gz)
		if err := writeEntries(tw, fs, mtime); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	})
}

func writeEntries(tw *tar.Writer, fs []File, mtime time.Time) error {
	for _, f := range fs {
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     f.Mode,
			Size:     int64(len(f.Data)),
			ModTime:  mtime,
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	return nil
}

// writeWithLayer writes a bundle that ends with the layer at path: one
// gzip member, whose deflate stream is the bundle's entries (a tar without
// its end, flushed to a byte boundary with a non-final block) followed by
// the layer's own deflate stream as it is (its back references never
// reach before its start), and whose trailer combines both CRCs. A reader
// of one member, or of a stream, reads the whole archive.
func writeWithLayer(w io.Writer, comment string, fs []File, path string, mtime time.Time) error {
	blob, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	body, crc2, size2, err := gzipBody(blob)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// Header: deflate, FCOMMENT, no time, unknown OS, as compress/gzip
	// writes it without a name.
	hdr := []byte{0x1f, 0x8b, 8, 0x10, 0, 0, 0, 0, 0, 255}
	hdr = append(append(hdr, comment...), 0)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	crc := crc32.NewIEEE()
	var n countWriter
	fw, err := flate.NewWriter(w, bundleLevel)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(io.MultiWriter(fw, crc, &n))
	if err := writeEntries(tw, fs, mtime); err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := fw.Flush(); err != nil { // sync flush: byte-aligned, not final
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc32Combine(crc.Sum32(), crc2, int64(size2)))
	binary.LittleEndian.PutUint32(trailer[4:], uint32(n)+size2)
	_, err = w.Write(trailer[:])
	return err
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// gzipBody returns the deflate stream of a gzip file of one member with a
// plain header (no name, comment or extra field), and its trailer's CRC
// and size.
func gzipBody(b []byte) (body []byte, crc, size uint32, err error) {
	if len(b) < 18 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] != 0 {
		return nil, 0, 0, errors.New("not a gzip layer with a plain header")
	}
	t := b[len(b)-8:]
	return b[10 : len(b)-8], binary.LittleEndian.Uint32(t), binary.LittleEndian.Uint32(t[4:]), nil
}

// LayerFits reports whether the gzip layer at path holds only the
// bundle file name, as WriteBundle writes one (a regular file owned by
// root, with mode, size bytes and mtime), in a form WriteBundle can splice
// in: a plain header, and a trailer that records exactly that one-entry
// tar (a second member, or another entry, would record another size).
// Only the gzip header and trailer and the first tar header are read.
// Errors are those of reading the file.
func LayerFits(path, name string, mode, size int64, mtime time.Time) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	tarSize := 512 + (size+511)/512*512 + 1024 // header, data, end
	if st.Size() < 18 || tarSize >= 1<<32 {
		return false, nil
	}
	var h, t [4]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return false, err
	}
	if _, err := f.ReadAt(t[:], st.Size()-4); err != nil {
		return false, err
	}
	if h != [4]byte{0x1f, 0x8b, 8, 0} || binary.LittleEndian.Uint32(t[:]) != uint32(tarSize) {
		return false, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return false, nil
	}
	th, err := tar.NewReader(zr).Next()
	if err != nil {
		return false, nil
	}
	return th.Typeflag == tar.TypeReg && strings.TrimPrefix(th.Name, "./") == name && th.Mode == mode &&
		th.Uid == 0 && th.Gid == 0 && th.Uname == "" && th.Gname == "" && th.ModTime.Equal(mtime) &&
		th.Size == size && len(th.PAXRecords) == 0, nil
}

// crc32Combine is the IEEE CRC-32 of A followed by B, from the CRCs of A
// and B and B's length (zlib's crc32_combine: appending len2 zero bytes is
// a linear map over GF(2), squared up from one zero bit).
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1 ^ crc2
	}
	var even, odd [32]uint32
	odd[0] = crc32.IEEE // the operator for one zero bit
	row := uint32(1)
	for i := 1; i < 32; i++ {
		odd[i] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four
	for {
		gf2Square(&even, &odd) // one zero byte, then 4, 16, ...
		if len2&1 != 0 {
			crc1 = gf2Times(&even, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
		gf2Square(&odd, &even)
		if len2&1 != 0 {
			crc1 = gf2Times(&odd, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2Times(m *[32]uint32, v uint32) uint32 {
	var sum uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

func gf2Square(sq, m *[32]uint32) {
	for i := range m {
		sq[i] = gf2Times(m, m[i])
	}
}
