package llbgen

import (
	"context"
	"slices"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"
)

// Definitions gives, for every state, the definition its own Marshal
// gives: the same ops (order aside, inputs first), the same root, the
// same metadata and source locations.
func TestDefinitionsMatchMarshal(t *testing.T) {
	p := testPlan(t, "monorepo")
	env := testEnv(p, Packages{Std: map[string][]string{"linux/amd64": {"fmt"}, "linux/arm64": {"fmt"}, "linux/arm/v7": {"fmt"}}})
	g, err := Generate(env)
	if err != nil {
		t.Fatal(err)
	}
	states := graphStates(g)
	uid := llb.LocalUniqueID("test")
	defs, err := Definitions(context.Background(), states, uid)
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != len(states) {
		t.Fatalf("%d definitions for %d states", len(defs), len(states))
	}
	located := 0
	for i, st := range states {
		want, err := st.Marshal(context.Background(), uid)
		if err != nil {
			t.Fatal(err)
		}
		w, got := want.ToPB(), defs[i]
		if len(got.Def) != len(w.Def) {
			t.Fatalf("state %d: %d ops, want %d", i, len(got.Def), len(w.Def))
		}
		if !slices.Equal(got.Def[len(got.Def)-1], w.Def[len(w.Def)-1]) {
			t.Errorf("state %d: another root", i)
		}
		digests := func(d *pb.Definition) []string {
			var out []string
			for _, dt := range d.Def {
				out = append(out, digest.FromBytes(dt).String())
			}
			slices.Sort(out)
			return out
		}
		if !slices.Equal(digests(got), digests(w)) {
			t.Errorf("state %d: other ops", i)
		}
		// Inputs come before the ops that use them.
		pos := map[string]int{}
		for j, dt := range got.Def {
			pos[digest.FromBytes(dt).String()] = j
		}
		for j, dt := range got.Def {
			var op pb.Op
			if err := op.UnmarshalVT(dt); err != nil {
				t.Fatal(err)
			}
			for _, in := range op.Inputs {
				if pos[in.Digest] >= j {
					t.Errorf("state %d: op %d uses a later op", i, j)
				}
			}
		}
		if len(got.Metadata) != len(w.Metadata) {
			t.Errorf("state %d: %d metadata, want %d", i, len(got.Metadata), len(w.Metadata))
		}
		for d, md := range w.Metadata {
			if !proto.Equal(md, got.Metadata[d]) {
				t.Errorf("state %d: metadata of %s: %v, want %v", i, d, got.Metadata[d], md)
			}
		}
		if len(got.Source.GetLocations()) != len(w.Source.GetLocations()) {
			t.Errorf("state %d: %d source locations, want %d", i, len(got.Source.GetLocations()), len(w.Source.GetLocations()))
		}
		located += len(w.Source.GetLocations())
		for d, l := range w.Source.GetLocations() {
			gl := got.Source.GetLocations()[d]
			if gl == nil || len(gl.Locations) != len(l.Locations) {
				t.Errorf("state %d: locations of %s differ", i, d)
				continue
			}
			// Indexes refer to the infos, which are the whole graph's:
			// compare the files they name.
			for k := range l.Locations {
				if w.Source.Infos[l.Locations[k].SourceIndex].Filename != got.Source.Infos[gl.Locations[k].SourceIndex].Filename ||
					!proto.Equal(l.Locations[k].Ranges[0], gl.Locations[k].Ranges[0]) {
					t.Errorf("state %d: location of %s differs", i, d)
				}
			}
		}
	}
	if located == 0 {
		t.Error("no state has a source location: the comparison of locations tested nothing")
	}
}

// Marshaled in parts (a large graph), the definitions are the same as in
// one part.
func TestDefinitionsInParts(t *testing.T) {
	p := testPlan(t, "monorepo")
	g, err := Generate(testEnv(p, Packages{}))
	if err != nil {
		t.Fatal(err)
	}
	var states []llb.State
	for len(states) < 300 {
		for _, tg := range g.Targets {
			states = append(states, tg.Binary)
			if tg.Image != nil {
				states = append(states, tg.Image.State)
			}
		}
	}
	ctx := context.Background()
	// A stable id for local sources: without one, every marshal draws its
	// own (berth always gives one).
	uid := llb.LocalUniqueID("test")
	parts, err := Definitions(ctx, states, uid)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := definitions(ctx, states, uid)
	if err != nil {
		t.Fatal(err)
	}
	sorted := func(d *pb.Definition) []string {
		var out []string
		for _, dt := range d.Def {
			out = append(out, string(dt))
		}
		slices.Sort(out)
		return out
	}
	for i := range states {
		// The same ops (the order of ops other than the root depends on
		// the graph they were marshaled in) and the same root.
		if !slices.Equal(sorted(parts[i]), sorted(whole[i])) || !slices.Equal(parts[i].Def[len(parts[i].Def)-1], whole[i].Def[len(whole[i].Def)-1]) {
			t.Fatalf("state %d: definitions differ", i)
		}
	}
}

// opInputs reads the inputs that decoding the whole op gives, for every
// kind of op in a graph.
func TestOpInputs(t *testing.T) {
	p := testPlan(t, "monorepo")
	g, err := Generate(testEnv(p, Packages{Std: map[string][]string{"linux/amd64": {"fmt"}}}))
	if err != nil {
		t.Fatal(err)
	}
	states := graphStates(g)
	def, err := llb.Merge(states).Marshal(context.Background(), llb.LocalUniqueID("test"))
	if err != nil {
		t.Fatal(err)
	}
	withInputs := 0
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		var want, got []string
		for _, in := range op.Inputs {
			want = append(want, in.Digest)
		}
		if err := opInputs(dt, func(d []byte) error { got = append(got, string(d)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("inputs %v, want %v", got, want)
		}
		if len(want) > 0 {
			withInputs++
		}
	}
	if withInputs == 0 {
		t.Error("no op has inputs: the test tested nothing")
	}
}

// graphStates lists every target's binary and image states, in order.
func graphStates(g *Graph) []llb.State {
	var states []llb.State
	for _, tg := range g.Targets {
		states = append(states, tg.Binary)
		if tg.Image != nil {
			states = append(states, tg.Image.State)
		}
	}
	return states
}
