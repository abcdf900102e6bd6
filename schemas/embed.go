// Package schemas embeds berth's CUE schema so that the binary carries it;
// users never vendor it.
package schemas

import "embed"

// FS holds the schema files of the CUE package
// github.com/berthbuild/berth/schemas.
//
//go:embed *.cue
var FS embed.FS

// File is the name of the schema file inside FS.
const File = "berth.cue"
