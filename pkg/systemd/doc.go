// Package systemd renders a linux plan.Target as a hardened systemd service
// unit, and the service's environment file.
//
// A unit is an ordered list of directives (section, name, value), as in
// coreos/go-systemd's unit package; rendering writes them in order, so the
// bytes depend only on the target and the options. Every value is checked
// before it is written: no newline or control character, no trailing
// backslash (a line continuation), valid UTF-8. Values that systemd
// unquotes (ExecStart=, Environment=) are quoted by systemd's own rules:
// double quotes when needed, `\` and `"` escaped, `%` written `%%` (a
// specifier otherwise) and, in ExecStart=, `$` written `$$` (a variable
// otherwise). Parse reads a unit back strictly, which is how the tests and
// the fuzz test prove that no value can add a line of its own.
//
// Choices a reader of a generated unit should know:
//   - The binary is installed at /usr/local/bin/<binary> unless
//     Options.ExecPath says otherwise.
//   - The default user 65532 (with group 65532) runs as DynamicUser=yes: a
//     transient uid, so the host needs no account. Any other user runs as
//     User=<uid> Group=<gid>, numerically.
//   - GOMAXPROCS and GOMEMLIMIT are Environment= lines, next to the CPUQuota=
//     and MemoryMax= they are derived from. The service's own variables go
//     to /etc/<project>/<service>.env (EnvironmentFile=, required: a missing
//     file fails the start instead of dropping declared settings), which
//     RenderEnv writes; a service without variables of its own gets no
//     EnvironmentFile= line.
//   - Hardening is on by default and scores about 1.1–1.4 ("OK") in
//     `systemd-analyze security --offline=true`. A port below 1024 keeps
//     CAP_NET_BIND_SERVICE (bounding and ambient) and drops PrivateUsers=,
//     which would take the capability away in the host's network namespace.
//     The network stays reachable: there is no IPAddressDeny=.
//   - Options.Overrides replaces, adds or removes directives afterwards.
package systemd
