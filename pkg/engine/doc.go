// Package engine connects berth to a BuildKit daemon: a remote builder
// (unix://, tcp:// with TLS, or BuildKit's connection helpers such as
// docker-container://, kube-pod://, ssh://), the Docker engine's own
// BuildKit, or the embedded default — the buildkitd pinned in go.mod that
// berth starts itself, one per user, shared by concurrent berth runs.
package engine
