// Package plan resolves a validated config into the service × platform
// matrix: one Target per pair, with every decision the build, the
// Dockerfile and the systemd unit share (Go flags and environment, user,
// limits, derived GOMAXPROCS/GOMEMLIMIT, labels, base, output paths).
// New is pure: no I/O, no clock; facts about the machine come in Inputs.
package plan
