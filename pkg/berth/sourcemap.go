package berth

import (
	"github.com/moby/buildkit/solver/errdefs"

	"github.com/berthbuild/berth/pkg/diag"
)

// sourceErrors turns the LLB source locations of a failed step into
// positioned errors pointing at the service's declaration.
func sourceErrors(err error) []*diag.Error {
	var out []*diag.Error
	for _, s := range errdefs.Sources(err) {
		if s.Info == nil {
			continue
		}
		for _, r := range s.Ranges {
			if r.Start == nil {
				continue
			}
			out = append(out, &diag.Error{
				Msg: "the failing step belongs to the service declared here",
				Pos: []diag.Pos{{File: s.Info.Filename, Line: int(r.Start.Line), Col: int(r.Start.Character)}},
			})
		}
	}
	return out
}
