// Package cli is berth's command line: one file per subcommand, each only
// parsing flags, calling package berth and printing.
package cli
