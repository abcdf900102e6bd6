// Package verify checks built binaries before berth publishes them: the
// executable format and machine match the target, a cgo-free binary is
// statically linked, and the Go build info records the intended settings.
package verify
