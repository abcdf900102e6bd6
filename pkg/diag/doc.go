// Package diag owns berth's diagnostics: positioned errors that point at a
// user's configuration, collected so that every mistake is reported in one
// run, sorted and de-duplicated, and printed the same way every time.
package diag
