// Package config loads a berth project: every .cue file of a directory,
// unified with berth's embedded schema (package schemas), defaults merged
// into each service, validated, and decoded into plain Go structs that keep
// the source position of each field. cue.Value never leaves this package.
package config
