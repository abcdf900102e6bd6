package llbgen

import (
	"context"
	"fmt"
	"slices"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// Definitions returns the definition of each state, as its own Marshal
// would, from one marshal of them all. Marshal walks and encodes a
// state's every ancestor, and BuildKit's marshal cache does not outlive
// the call; thousands of images share most of their steps (module
// download, standard library, toolchain, base), so marshaling each alone
// would encode those steps thousands of times.
func Definitions(ctx context.Context, states []llb.State, opts ...llb.ConstraintsOpt) ([]*pb.Definition, error) {
	if len(states) == 1 {
		def, err := states[0].Marshal(ctx, opts...)
		if err != nil {
			return nil, err
		}
		return []*pb.Definition{def.ToPB()}, nil
	}
	all, err := llb.Merge(states).Marshal(ctx, opts...)
	if err != nil {
		return nil, err
	}
	big := all.ToPB()
	type op struct {
		dt     []byte
		inputs []string
		order  int
	}
	ops := make(map[string]*op, len(big.Def))
	parsed := make(map[string]*pb.Op, len(big.Def))
	for i, dt := range big.Def {
		var o pb.Op
		if err := o.UnmarshalVT(dt); err != nil {
			return nil, err
		}
		d := digest.FromBytes(dt).String()
		ins := make([]string, len(o.Inputs))
		for j, in := range o.Inputs {
			ins[j] = in.Digest
		}
		ops[d] = &op{dt: dt, inputs: ins, order: i}
		parsed[d] = &o
	}
	// The last op names the root: the merge of the states.
	var merge *pb.Op
	if term := parsed[digest.FromBytes(big.Def[len(big.Def)-1]).String()]; term != nil && len(term.Inputs) == 1 {
		merge = parsed[term.Inputs[0].Digest]
	}
	if merge == nil || merge.GetMerge() == nil || len(merge.Inputs) != len(states) {
		return nil, fmt.Errorf("definitions: no merge of %d states in the marshaled graph", len(states))
	}
	out := make([]*pb.Definition, len(states))
	for i, in := range merge.Inputs {
		// The ops the state reaches, in the order of the whole graph
		// (inputs before the ops that use them).
		seen := map[string]bool{}
		var walk func(string)
		walk = func(d string) {
			if seen[d] {
				return
			}
			seen[d] = true
			for _, x := range ops[d].inputs {
				walk(x)
			}
		}
		walk(in.Digest)
		def := &pb.Definition{Metadata: map[string]*pb.OpMetadata{}}
		list := make([]*op, 0, len(seen))
		for d := range seen {
			list = append(list, ops[d])
		}
		sortOps(list, func(o *op) int { return o.order })
		for _, o := range list {
			def.Def = append(def.Def, o.dt)
		}
		caps := map[string]bool{string(pb.CapConstraints): true, string(pb.CapPlatform): true}
		for d := range seen {
			md, ok := big.Metadata[d]
			if !ok {
				continue
			}
			def.Metadata[d] = md
			if md.IgnoreCache {
				caps[string(pb.CapMetaIgnoreCache)] = true
			}
			if md.Description != nil {
				caps[string(pb.CapMetaDescription)] = true
			}
			if md.ExportCache != nil {
				caps[string(pb.CapMetaExportCache)] = true
			}
		}
		term := &pb.Op{Inputs: []*pb.Input{{Digest: in.Digest, Index: in.Index}}}
		dt, err := term.MarshalVT()
		if err != nil {
			return nil, err
		}
		def.Def = append(def.Def, dt)
		def.Metadata[digest.FromBytes(dt).String()] = &pb.OpMetadata{Caps: caps}
		if big.Source != nil {
			src := &pb.Source{Infos: big.Source.Infos, Locations: map[string]*pb.Locations{}}
			for d := range seen {
				if l, ok := big.Source.Locations[d]; ok {
					src.Locations[d] = l
				}
			}
			def.Source = src
		}
		out[i] = def
	}
	return out, nil
}

func sortOps[T any](s []T, key func(T) int) {
	slices.SortFunc(s, func(a, b T) int { return key(a) - key(b) })
}
