package berth

import (
	"fmt"
	"strings"
	"testing"

	"github.com/berthbuild/berth/pkg/plan"
)

// --service and --platform choose targets; a name that matches nothing,
// or a service the platforms leave with nothing, is an error, not a
// smaller build.
func TestSelectTargets(t *testing.T) {
	p := &plan.Plan{Services: []string{"api", "edge"}}
	for _, pf := range []string{"linux/amd64", "linux/arm64"} {
		p.Targets = append(p.Targets, plan.Target{Service: "api", Platform: pf})
	}
	p.Targets = append(p.Targets, plan.Target{Service: "edge", Platform: "linux/arm/v7"})
	describe := func(q *plan.Plan) string {
		var parts []string
		for _, t := range q.Targets {
			parts = append(parts, t.Service+"@"+t.Platform)
		}
		return fmt.Sprintf("%v %s", q.Services, strings.Join(parts, " "))
	}
	for _, tc := range []struct {
		services, pfs []string
		want          string // or the error's text
	}{
		{nil, nil, "[api edge] api@linux/amd64 api@linux/arm64 edge@linux/arm/v7"},
		{[]string{"edge"}, nil, "[edge] edge@linux/arm/v7"},
		{nil, []string{"linux/arm64"}, "[api] api@linux/arm64"},
		{nil, []string{"linux/arm"}, "[edge] edge@linux/arm/v7"}, // normalized, as buildx does
		{[]string{"api"}, []string{"linux/amd64", "linux/arm/v7"}, "[api] api@linux/amd64"},
		{nil, []string{"arm64"}, "--platform arm64: no service builds it (the plan has linux/amd64, linux/arm64, linux/arm/v7)"},
		{[]string{"nope"}, nil, "--service nope: no such service (have api, edge)"},
		{nil, []string{"linux/s390x"}, "--platform linux/s390x: no service builds it (the plan has linux/amd64, linux/arm64, linux/arm/v7)"},
		{[]string{"api", "edge"}, []string{"linux/arm64"}, "--service edge: it is built for linux/arm/v7, not for --platform linux/arm64"},
	} {
		q, err := selectTargets(p, tc.services, tc.pfs)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = describe(q)
		}
		if got != tc.want {
			t.Errorf("--service %v --platform %v:\n got %s\nwant %s", tc.services, tc.pfs, got, tc.want)
		}
	}
	if len(p.Targets) != 3 {
		t.Errorf("selectTargets changed the plan it chose from: %d targets", len(p.Targets))
	}
}
