// Package berth is berth as a library: load and validate a project, plan
// it, generate side outputs and build it. The CLI only parses flags and
// prints; other Go tools can embed berth through this package.
package berth
