// Package llbgen turns a plan into BuildKit LLB: pure functions from plan
// targets to llb.State values and OCI image configs. Nothing here talks to
// a daemon; the whole project becomes one graph that package engine solves.
//
// The graph: one module-download step keyed only on go.mod/go.sum; per
// builder platform a step that compiles the standard library packages the
// project uses (so concurrent service builds do not each compile it); per
// target a compile step on a scratch rootfs with the pinned Go toolchain
// mounted read-only, the service's own source files only, the downloaded
// modules, the Go build cache as a cache mount and no network; per image
// the base (scratch, the built-in static base, or a pinned image) plus one
// layer with the binary.
package llbgen
