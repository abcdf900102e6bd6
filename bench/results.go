package main

// Results saved as JSON in the work directory, so that -report-from
// renders a report again without measuring.

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// saved is the results as JSON, so a report can be rendered again
// (-report-from) without measuring again.
type saved struct {
	N, Runs, Scale      int
	Deps, DFRepro       bool
	Started, Finished   time.Time
	Repo, Buildkitd     string
	BuilderRef          string
	BerthVersion        string
	Host                hostInfo
	EngineConfig        string
	ProjectDir          string
	Services            []string
	Flags               []string // the plan's go build flags (project.Flags)
	Changes             int
	Samples             map[string]map[caseName]series
	BerthRuns           map[caseName][]*buildRun
	DFRuns              map[caseName][]*dfReport
	ImgService          string
	BerthImage, DFImage imageInfo
	ScaleResult         *scaleResult
	LoadResult          *loadResult
	ColdProfile         *coldProfile
}

func (r *results) save(path string) error {
	s := saved{
		N: r.cfg.n, Runs: r.cfg.runs, Scale: r.cfg.scale, Deps: r.cfg.deps, DFRepro: r.cfg.dfRepro,
		Started: r.started, Finished: r.finished, Repo: r.repo, Buildkitd: r.buildkitd, BuilderRef: r.builderRef,
		BerthVersion: r.berthVersion, Host: r.host, EngineConfig: r.engineConfig,
		Samples: r.samples, BerthRuns: r.berthRuns, DFRuns: r.dfRuns,
		ImgService: r.imgService, BerthImage: r.berthImage, DFImage: r.dfImage, ScaleResult: r.scale, LoadResult: r.load, ColdProfile: r.coldProf,
	}
	if r.proj != nil {
		s.ProjectDir, s.Services, s.Changes, s.Flags = r.proj.Dir, r.proj.Services, r.proj.changes, r.proj.Flags
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func loadResults(path string) (*results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s saved
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := newResults(config{n: s.N, runs: s.Runs, scale: s.Scale, deps: s.Deps, dfRepro: s.DFRepro}, s.Started, s.Repo, s.Buildkitd)
	r.finished, r.builderRef, r.berthVersion, r.host, r.engineConfig = s.Finished, s.BuilderRef, s.BerthVersion, s.Host, s.EngineConfig
	r.describeHost() // results saved before the run described its host: this machine's
	if s.Samples != nil {
		r.samples = s.Samples
	}
	if s.BerthRuns != nil {
		r.berthRuns = s.BerthRuns
	}
	if s.DFRuns != nil {
		r.dfRuns = s.DFRuns
	}
	r.imgService, r.berthImage, r.dfImage, r.scale, r.load, r.coldProf = s.ImgService, s.BerthImage, s.DFImage, s.ScaleResult, s.LoadResult, s.ColdProfile
	if len(s.Services) > 0 {
		r.proj = &project{Dir: s.ProjectDir, Services: s.Services, Deps: s.Deps, changes: s.Changes, Flags: s.Flags}
	}
	return r, nil
}
