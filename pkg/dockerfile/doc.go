// Package dockerfile renders a service's linux targets as one
// multi-platform Dockerfile, and the ignore file that goes with it.
//
// The Dockerfile is the same build as berth's own LLB path, written so that
// `docker buildx build` can run it without berth: the same go build flags
// and environment, the same base and user, the same runtime environment,
// ports and labels. It has no `# syntax=` line, which would make BuildKit
// pull a frontend image; it needs the built-in frontend of BuildKit 0.11+
// (Docker 23+) for heredocs, cache mounts and `COPY --link`.
//
// Layout:
//   - A header comment: where the service is declared, the buildx command
//     for all its platforms, and the `docker run` flags that apply the
//     declared limits (--cpus, --memory, --ulimit nofile, --pids-limit).
//   - Stage build, on $BUILDPLATFORM: the builder image (the service's
//     builder, else RenderInfo.GoImage, else golang:<go version>, which is
//     not pinned by digest and says so), modules downloaded in their own
//     cached step keyed on go.* only, then one cross-compiling go build per
//     target platform (GOOS/GOARCH/GOARM from TARGETOS/TARGETARCH/
//     TARGETVARIANT, everything else exactly the target's BuildEnv and
//     BuildFlags) with the build and module caches mounted.
//   - For base "static", stage static: FROM scratch with the files of
//     berth's built-in base, the same as the LLB path's (package llbgen):
//     /etc/passwd and /etc/group (root, nonroot 65532 and, for another uid,
//     "app"), /etc/nsswitch.conf, the home directory owned by the service
//     user, /tmp, the Go toolchain's zoneinfo.zip at
//     /usr/share/zoneinfo.zip and a CA bundle at
//     /etc/ssl/certs/ca-certificates.crt. Only the bundle's source differs:
//     the builder image's, where the LLB path writes the pinned
//     golang.org/x/crypto/x509roots/fallback roots. The accounts are
//     heredocs; the rest is gathered in the build stage, before anything
//     platform-specific, so it runs once.
//   - The final stage: scratch, or the pinned base image; for "static" the
//     static stage copied as one layer. Then one layer with the binary at
//     /<binary> (nothing else: no directory entries), USER uid:gid, ENV (the LLB path's image
//     environment: PATH, for static SSL_CERT_FILE and ZONEINFO, then the
//     service's own, sorted), EXPOSE, LABEL, ENTRYPOINT and CMD in exec
//     (JSON) form. A pinned base keeps its own other variables, which the
//     LLB path drops.
//
// Every value from the configuration is checked (valid UTF-8, no control
// character) and quoted for the place it lands: double-quoted words for
// ENV and LABEL, single-quoted shell words in RUN, JSON for ENTRYPOINT and
// CMD. Tests parse the output with BuildKit's own parser and linter.
package dockerfile
