package main

// Why a berth case missed its goal: where its time went (BERTH_TRACE
// phases, the longest steps, the solve's timeline), the work the floor
// does not do, and the least a cold build could take.

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// explainBerth says where a berth case spent its time, from BERTH_TRACE
// (medians over runs) and the longest steps of the solve.
func (r *results) explainBerth(c caseName, over time.Duration) string {
	runs := r.berthRuns[c]
	ph := medianPhases(runs)
	var b strings.Builder
	if over > 0 {
		fmt.Fprintf(&b, "%.2f s over the target. ", over.Seconds())
	}
	var parts []string
	var outside float64
	for _, p := range ph {
		parts = append(parts, fmt.Sprintf("%s %.3f s", p.Name, p.Seconds))
		if p.Name != "solve and export" && p.Name != "done" {
			outside += p.Seconds
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, "BERTH_TRACE phases (median of %d runs): %s; %.2f s of it outside the solve. ", len(runs), strings.Join(parts, ", "), outside)
	}
	if n := len(runs); n > 0 && runs[n-1] != nil && len(runs[n-1].Top) > 0 {
		var top []string
		for _, v := range runs[n-1].Top {
			top = append(top, fmt.Sprintf("%s %.2f s", strings.TrimSpace(v.Name), v.Seconds))
		}
		fmt.Fprintf(&b, "Longest steps that ran in the last run: %s.", strings.Join(top, "; "))
	}
	return b.String()
}

// timelineText says when the parts of a build's solve ran, how much of
// it was left after its last standard-library step, and how long the
// client worked after it (phase: the median phases).
func timelineText(run *buildRun, phase map[string]float64) string {
	if len(run.Timeline) == 0 {
		return ""
	}
	var parts []string
	var lastStd, end float64
	for _, s := range run.Timeline {
		parts = append(parts, fmt.Sprintf("%s %.1f–%.1f", s.Name, s.Start, s.End))
		if strings.HasPrefix(s.Name, "std ") {
			lastStd = max(lastStd, s.End)
		}
		end = max(end, s.End)
	}
	after := phase["binaries from images"] + phase["assemble images"] + phase["publish layout"] + phase["publish binaries"] + phase["bundles"]
	return fmt.Sprintf(" When the solve's parts ran in the last run (s from its first step): %s. After the last standard-library step ended, %.1f s of the solves remained (that platform's shared and service steps, then the export of its images), then %.2f s of the client's work (median: the last platform's binaries from the layers, the indexes, the layout, the bundles).",
		strings.Join(parts, ", "), end-lastStd, after)
}

// coldExtra sums, for a cold berth build, the work the floor (a plain go
// build) does not do, from the median phases and the last run's steps.
func (r *results) coldExtra(floor time.Duration) string {
	runs := r.berthRuns[cold]
	if len(runs) == 0 || runs[len(runs)-1] == nil {
		return ""
	}
	phase := map[string]float64{}
	for _, p := range medianPhases(runs) {
		phase[p.Name] = p.Seconds
	}
	var export float64
	var std []string
	for _, s := range runs[len(runs)-1].Timeline {
		if s.Name == "export" {
			export += s.End - s.Start
		}
	}
	for _, v := range runs[len(runs)-1].Top {
		switch {
		case strings.HasPrefix(v.Name, "[berth] go build std "):
			std = append(std, fmt.Sprintf("%.2f s", v.Seconds))
		}
	}
	cpu := ""
	if b, ok := r.med("berth", cold); ok && b.CPU > 0 {
		if f, ok := r.med("floor", cold); ok && f.CPU > 0 {
			cores := float64(runtime.NumCPU())
			cpu = fmt.Sprintf(" The machine's cores were %.0f%% busy during berth's cold builds and %.0f%% during the floor's (medians); berth's used %.1f core-s of CPU against the floor's %.1f (%.2f×), so with the cores saturated only less work shortens it.",
				100*b.CPU.Seconds()/(cores*b.Wall.Seconds()), 100*f.CPU.Seconds()/(cores*f.Wall.Seconds()), b.CPU.Seconds(), f.CPU.Seconds(), b.CPU.Seconds()/f.CPU.Seconds())
			if b.StepsCPU > 0 && f.ClientCPU > 0 {
				cpu += fmt.Sprintf(" Of it, berth's go build, compile and link processes used %.1f core-s (%.2f× the floor's go build, %.1f), the engine's own work %.1f and berth's client %.1f.",
					b.StepsCPU.Seconds(), b.StepsCPU.Seconds()/f.ClientCPU.Seconds(), f.ClientCPU.Seconds(), b.EngineCPU.Seconds(), b.ClientCPU.Seconds())
				cpu += coldBound(cores, b, f)
			}
		}
	}
	if r.coldProf != nil {
		cpu += r.coldProf.summary()
	}
	return cpu + timelineText(runs[len(runs)-1], phase) + fmt.Sprintf(" Work the floor does not do, inside the ratio: compressing the images' layers (BuildKit's gzip, %.2f s of the exports in the last run, the first platform's while the last one compiles), "+
		"starting the engine and finding the packed toolchain (%.2f s), extracting the binaries from the layers (each platform's as its export returns; %.2f s after the last) and writing the bare-metal bundles (%.2f s); "+
		"the standard-library steps (on the embedded engine at most one per core at once, each with GOMAXPROCS its share of the cores) took %s against the floor's whole cold build (standard library and services) of %.2f s.",
		export, phase["connect"]+phase["toolchain"], phase["binaries from images"], phase["bundles"], strings.Join(std, " and "), floor.Seconds())
}

// coldBound is the least a cold berth build could take against the
// floor, from the medians: if its compiles cost what the floor's go build
// costs (the same compiler, flags and binaries) and every core stayed
// busy, berth would still add its own work (all the machine did during
// its run but the build steps: engine, client, kernel) to the floor's.
// Turned round, it is the CPU berth's steps may use for the floor's wall
// time: the cores' time less berth's own work, against the floor's go
// build (f.ClientCPU) when it is known.
func coldBound(cores float64, b, f sample) string {
	own := b.CPU - b.StepsCPU
	if own <= 0 || f.Wall <= 0 {
		return ""
	}
	coreTime := cores * f.Wall.Seconds() // the cores' time in the floor's wall time
	out := fmt.Sprintf(" A bound: berth's own work besides its build steps (the machine's busy CPU less the steps') was %.1f core-s, and the floor left %.1f core-s of its cores idle; at the floor's compile cost, with every core busy, berth would take (%.1f + %.1f) / %.0f cores = %.2f× the floor.",
		own.Seconds(), coreTime-f.CPU.Seconds(), f.CPU.Seconds(), own.Seconds(), cores, (f.CPU.Seconds()+own.Seconds())/coreTime)
	if budget := coreTime - own.Seconds(); f.ClientCPU > 0 && budget > 0 {
		out += fmt.Sprintf(" Turned round: to finish in the floor's %.2f s with every core busy, berth's build steps could use %.0f × %.2f − %.1f = %.1f core-s, %.2f× the floor's go build; they used %.2f×.",
			f.Wall.Seconds(), cores, f.Wall.Seconds(), own.Seconds(), budget, budget/f.ClientCPU.Seconds(), b.StepsCPU.Seconds()/f.ClientCPU.Seconds())
	}
	return out
}
