package export

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"sort"
	"time"
)

// File is one entry of a bundle.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// WriteBundle writes a deterministic .tar.gz: entries sorted by name, owned
// by root, every time set to mtime, and no name or time in the gzip
// header, so the same files give the same sha256 on every machine.
func WriteBundle(path string, files []File, mtime time.Time) error {
	fs := append([]File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return WriteFileFrom(path, 0o644, func(w io.Writer) error {
		gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(gz)
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
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	})
}
