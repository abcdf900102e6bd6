// Package export publishes build results under the output directory:
// every file and directory is assembled in a temporary place next to its
// destination and moved there with one rename (or an atomic exchange for
// directories), so a failed or interrupted build never leaves a
// half-written artifact and readers see the old result or the new one.
package export
