package llbgen

import (
	"context"
	"fmt"
	"runtime"
	"slices"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protowire"
)

// Definitions returns the definition of each state, as its own Marshal
// would, from one marshal of them all. Marshal walks and encodes a
// state's every ancestor, and BuildKit's marshal cache does not outlive
// the call; thousands of images share most of their steps (module
// download, standard library, toolchain, base), so marshaling each alone
// would encode those steps thousands of times.
func Definitions(ctx context.Context, states []llb.State, opts ...llb.ConstraintsOpt) ([]*pb.Definition, error) {
	// Large graphs are marshaled in a part per core: the parts share only
	// the few common steps, which each part encodes again.
	parts := runtime.GOMAXPROCS(0)
	if parts > 1 && len(states) >= 256 {
		sortInputs(ctx, states, opts)
		out := make([]*pb.Definition, len(states))
		eg, ectx := errgroup.WithContext(ctx)
		size := (len(states) + parts - 1) / parts
		for lo := 0; lo < len(states); lo += size {
			hi := min(lo+size, len(states))
			eg.Go(func() error {
				defs, err := definitions(ectx, states[lo:hi], opts...)
				copy(out[lo:hi], defs)
				return err
			})
		}
		return out, eg.Wait()
	}
	return definitions(ctx, states, opts...)
}

// sortInputs asks every op the states reach for its inputs, once, one op
// after another. BuildKit's ExecOp sorts its mounts in place when asked:
// two parts marshaling a step they share (the toolchain's, the standard
// library's) would sort the same slice at once. Once sorted, asking again
// only reads it.
func sortInputs(ctx context.Context, states []llb.State, opts []llb.ConstraintsOpt) {
	c := llb.NewConstraints(opts...) // as the parts marshal their merge of states
	seen := map[llb.Vertex]bool{}
	var stack []llb.Vertex
	for _, s := range states {
		out := s.Output()
		if out == nil {
			continue
		}
		v := out.Vertex(ctx, c)
		if v == nil || seen[v] {
			continue
		}
		seen[v] = true
		stack = append(stack[:0], v)
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, in := range v.Inputs() {
				if iv := in.Vertex(ctx, c); iv != nil && !seen[iv] {
					seen[iv] = true
					stack = append(stack, iv)
				}
			}
		}
	}
}

func definitions(ctx context.Context, states []llb.State, opts ...llb.ConstraintsOpt) ([]*pb.Definition, error) {
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
	// Ops by index in the whole graph (inputs before users), their inputs
	// as indexes, and what each adds to the root's capabilities.
	n := len(big.Def)
	index := make(map[string]int, n)
	digests := make([]string, n)
	for i, dt := range big.Def {
		digests[i] = digest.FromBytes(dt).String()
		index[digests[i]] = i
	}
	// The inputs of op i are edges[from[i]:from[i+1]].
	from := make([]int, n+1)
	edges := make([]int, 0, 2*n)
	var root *pb.Op
	for i, dt := range big.Def {
		if i == n-1 {
			var o pb.Op
			if err := o.UnmarshalVT(dt); err != nil {
				return nil, err
			}
			if len(o.Inputs) == 1 {
				root = &o
			}
		}
		err := opInputs(dt, func(d []byte) error {
			j, ok := index[string(d)]
			if !ok {
				return fmt.Errorf("definitions: op %s uses an op not in the graph", digests[i])
			}
			edges = append(edges, j)
			return nil
		})
		if err != nil {
			return nil, err
		}
		from[i+1] = len(edges)
	}
	const (
		capIgnoreCache = 1 << iota
		capDescription
		capExportCache
	)
	flags := make([]int, n)
	for i, d := range digests {
		md := big.Metadata[d]
		if md == nil {
			continue
		}
		if md.IgnoreCache {
			flags[i] |= capIgnoreCache
		}
		if md.Description != nil {
			flags[i] |= capDescription
		}
		if md.ExportCache != nil {
			flags[i] |= capExportCache
		}
	}
	var merge *pb.Op
	if root != nil {
		if j, ok := index[root.Inputs[0].Digest]; ok {
			var o pb.Op
			if err := o.UnmarshalVT(big.Def[j]); err != nil {
				return nil, err
			}
			merge = &o
		}
	}
	if merge == nil || merge.GetMerge() == nil || len(merge.Inputs) != len(states) {
		return nil, fmt.Errorf("definitions: no merge of %d states in the marshaled graph", len(states))
	}
	caps := map[int]map[string]bool{}
	mark := make([]int, n) // the last state (1-based) that reached each op
	out := make([]*pb.Definition, len(states))
	var stack, list []int
	for i, in := range merge.Inputs {
		start := index[in.Digest]
		list, stack = list[:0], append(stack[:0], start)
		mark[start] = i + 1
		for len(stack) > 0 {
			k := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			list = append(list, k)
			for _, j := range edges[from[k]:from[k+1]] {
				if mark[j] != i+1 {
					mark[j] = i + 1
					stack = append(stack, j)
				}
			}
		}
		slices.Sort(list) // the whole graph's order: inputs first
		def := &pb.Definition{Def: make([][]byte, 0, len(list)+1), Metadata: make(map[string]*pb.OpMetadata, len(list)+1)}
		f := 0
		for _, k := range list {
			def.Def = append(def.Def, big.Def[k])
			if md := big.Metadata[digests[k]]; md != nil {
				def.Metadata[digests[k]] = md
			}
			f |= flags[k]
		}
		c, ok := caps[f]
		if !ok {
			c = map[string]bool{string(pb.CapConstraints): true, string(pb.CapPlatform): true}
			if f&capIgnoreCache != 0 {
				c[string(pb.CapMetaIgnoreCache)] = true
			}
			if f&capDescription != 0 {
				c[string(pb.CapMetaDescription)] = true
			}
			if f&capExportCache != 0 {
				c[string(pb.CapMetaExportCache)] = true
			}
			caps[f] = c
		}
		term := &pb.Op{Inputs: []*pb.Input{{Digest: in.Digest, Index: in.Index}}}
		dt, err := term.MarshalVT()
		if err != nil {
			return nil, err
		}
		def.Def = append(def.Def, dt)
		def.Metadata[digest.FromBytes(dt).String()] = &pb.OpMetadata{Caps: c}
		if big.Source != nil {
			src := &pb.Source{Infos: big.Source.Infos, Locations: map[string]*pb.Locations{}}
			for _, k := range list {
				if l, ok := big.Source.Locations[digests[k]]; ok {
					src.Locations[digests[k]] = l
				}
			}
			def.Source = src
		}
		out[i] = def
	}
	return out, nil
}

// opInputs calls fn with the digest of each input of a marshaled pb.Op,
// in order. It reads only the inputs (field 1 of Op, and field 1 of each
// Input): decoding whole ops, with their exec and file actions, would cost
// more than the rest of Definitions on large graphs.
func opInputs(dt []byte, fn func(digest []byte) error) error {
	for len(dt) > 0 {
		num, typ, n := protowire.ConsumeTag(dt)
		if n < 0 {
			return malformedOp(n)
		}
		dt = dt[n:]
		if num != 1 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, dt); n < 0 {
				return malformedOp(n)
			}
			dt = dt[n:]
			continue
		}
		in, n := protowire.ConsumeBytes(dt)
		if n < 0 {
			return malformedOp(n)
		}
		dt = dt[n:]
		// The Input's digest; the last one, if repeated, as proto does.
		var d []byte
		for len(in) > 0 {
			num, typ, n := protowire.ConsumeTag(in)
			if n < 0 {
				return malformedOp(n)
			}
			in = in[n:]
			if num == 1 && typ == protowire.BytesType {
				d, n = protowire.ConsumeBytes(in)
			} else {
				n = protowire.ConsumeFieldValue(num, typ, in)
			}
			if n < 0 {
				return malformedOp(n)
			}
			in = in[n:]
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func malformedOp(n int) error {
	return fmt.Errorf("definitions: malformed op: %w", protowire.ParseError(n))
}
