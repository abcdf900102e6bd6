package main

// Measuring processes: wall time, the peak RSS the kernel records for a
// child (rusage, the largest single process of its waited-for tree), and
// sampled RSS of process trees (the client's, and buildkitd's with the
// runc containers it starts), because the build steps of berth and of the
// Dockerfile path run under the daemon, not under the client.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sample is one measured run.
type sample struct {
	Wall time.Duration
	// ClientRSS is rusage Maxrss of the command: the largest single
	// process among it and its waited-for descendants.
	ClientRSS int64
	// DaemonRSS is buildkitd's own RSS, the largest sampled.
	DaemonRSS int64
	// TreeRSS is the largest sampled sum of the RSS of every process
	// involved: the command's tree plus buildkitd's tree.
	TreeRSS int64
	// CPU is the machine's busy CPU time during the run (all cores, every
	// process and the kernel: /proc/stat), the work the run made the
	// machine do, if nothing else ran.
	CPU time.Duration
	// OnEngine says the build ran on buildkitd (berth, the Dockerfile),
	// not in the command (the floor).
	OnEngine bool
	// ClientCPU is the user and system time of the command and of the
	// descendants it waited for (rusage): berth's client with its go
	// list, or the floor's go build with its compiles and links.
	ClientCPU time.Duration
	// EngineCPU is buildkitd's own user and system time during the run:
	// the engine's work (exporting, compressing, unpacking, snapshots).
	EngineCPU time.Duration
	// StepsCPU is the user and system time of the processes buildkitd
	// started and reaped during the run: the build steps (runc and the
	// go, compile and link processes in its containers).
	StepsCPU time.Duration
	// Rebuilt counts the go build steps that ran (not cached); -1 when
	// not known.
	Rebuilt int
	// Note is a per-run remark (a failed assertion).
	Note string
}

// daemonPID finds the engine's daemon, which may start during the run.
type daemonPID func() int

const sampleEvery = 100 * time.Millisecond

// settle waits for the machine to finish what the previous run or reset
// left in flight, so that it does not land in the next run's figures:
// sync returns once the dirty pages (GBs after a cold build or a reset of
// the engine's state) are written back; the pause lets the daemons the
// previous run woke go idle. Every path's every run gets it, outside its
// measured time.
func settle() {
	waitQuiet()
	syscall.Sync()
	time.Sleep(settlePause)
}

const settlePause = time.Second

// selfExe is this program, which wraps every measured command (see
// rusageMain).
var selfExe string

// runMeasured runs cmd to completion while sampling RSS.
//
// The command runs under this program's small rusage subcommand: Linux
// starts a child's maxrss at the high-water RSS of the process that
// forked it (the exec'd child inherits the parent's mm hiwater), so a
// child forked straight from this benchmark, which holds the registry and
// its images in memory, would report the benchmark's own peak.
func runMeasured(cmd *exec.Cmd, daemon daemonPID) (sample, error) {
	var s sample
	ruFile, err := os.CreateTemp("", "bench-rusage-")
	if err != nil {
		return s, err
	}
	ruFile.Close()
	defer os.Remove(ruFile.Name())
	settle()
	inner := cmd
	cmd = exec.CommandContext(context.Background(), selfExe, append([]string{"rusage", ruFile.Name(), inner.Path}, inner.Args[1:]...)...)
	cmd.Env, cmd.Dir = inner.Env, inner.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inner.Stdin, inner.Stdout, inner.Stderr
	var dpid int // the daemon, once seen
	var d0 procCPU
	s.OnEngine = daemon != nil
	if daemon != nil {
		if dpid = daemon(); dpid > 0 {
			d0 = readProcCPU(dpid)
		}
	}
	start, busy0 := time.Now(), cpuBusy()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			procs := readProcs()
			root := cmd.Process.Pid
			mu.Lock()
			if daemon != nil && dpid == 0 {
				// A daemon the command starts: its times count from 0.
				dpid = daemon()
			}
			mu.Unlock()
			// One set: a daemon berth starts is its child until berth
			// exits. The wrapper's own few MB are not the command's.
			set := procs.tree(root)
			if dpid > 0 {
				for pid := range procs.tree(dpid) {
					set[pid] = true
				}
			}
			delete(set, root)
			var tree int64
			for pid := range set {
				tree += procs[pid].rss
			}
			mu.Lock()
			if tree > s.TreeRSS {
				s.TreeRSS = tree
			}
			if dpid > 0 {
				if r := procs[dpid].rss; r > s.DaemonRSS {
					s.DaemonRSS = r
				}
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err = cmd.Wait()
	s.Wall = time.Since(start)
	if busy0 > 0 {
		s.CPU = cpuBusy() - busy0
	}
	close(stop)
	wg.Wait()
	if daemon != nil && dpid == 0 {
		dpid = daemon()
	}
	if dpid > 0 {
		d1 := readProcCPU(dpid)
		s.EngineCPU, s.StepsCPU = d1.self-d0.self, d1.children-d0.children
	}
	if b, rerr := os.ReadFile(ruFile.Name()); rerr == nil {
		// "<maxrss KiB> <user+system ns>"
		f := strings.Fields(string(b))
		if len(f) == 2 {
			if kb, perr := strconv.ParseInt(f[0], 10, 64); perr == nil {
				s.ClientRSS = kb * 1024
			}
			if ns, perr := strconv.ParseInt(f[1], 10, 64); perr == nil {
				s.ClientCPU = time.Duration(ns)
			}
		}
	}
	if s.TreeRSS < s.ClientRSS {
		// A process that lived between two samples.
		s.TreeRSS = s.ClientRSS
	}
	s.Rebuilt = -1
	return s, err
}

// cpuBusy is the machine's busy CPU time since boot: user, nice, system,
// irq and softirq of the "cpu" line of /proc/stat (not idle, iowait, or
// steal: time the hypervisor gave another machine), 0 when unknown.
func cpuBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	// USER_HZ, in which /proc/stat counts, is 100 on every Linux port.
	return time.Duration(ticks) * (time.Second / 100)
}

// rusageMain runs a command, writes its maxrss (KiB) to a file and exits
// with its status.
func rusageMain(args []string) {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench rusage FILE COMMAND [ARG]...")
		os.Exit(2)
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		_ = os.WriteFile(args[0], []byte(fmt.Sprintf("%d %d", ru.Maxrss, cpu.Nanoseconds())), 0o644)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// proc is one line of the process table.
type proc struct {
	ppid int
	rss  int64
}

type procTable map[int]proc

var pageSize = int64(os.Getpagesize())

// readProcs reads the parent and RSS of every process from /proc/*/stat.
func readProcs() procTable {
	out := procTable{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := statFields(b)
		// f[0] is field 3 (state): ppid is field 4, rss field 24.
		if len(f) < 22 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		rss, _ := strconv.ParseInt(f[21], 10, 64)
		out[pid] = proc{ppid: ppid, rss: rss * pageSize}
	}
	return out
}

// statFields are the fields of a /proc/PID/stat line after the command
// name (which may hold spaces and ")"), from field 3 on; nil if malformed.
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// procCPU is a process's CPU time: its own, and that of the children it
// has reaped (which includes theirs).
type procCPU struct{ self, children time.Duration }

// readProcCPU reads utime, stime, cutime and cstime from /proc/PID/stat.
func readProcCPU(pid int) procCPU {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procCPU{}
	}
	// f[0] is field 3: utime is field 14, stime 15, cutime 16, cstime 17.
	f := statFields(b)
	if len(f) < 15 {
		return procCPU{}
	}
	var t [4]int64
	for j := range t {
		t[j], _ = strconv.ParseInt(f[11+j], 10, 64)
	}
	tick := time.Second / 100 // USER_HZ
	return procCPU{self: time.Duration(t[0]+t[1]) * tick, children: time.Duration(t[2]+t[3]) * tick}
}

// tree is the set of root and all its descendants.
func (t procTable) tree(root int) map[int]bool {
	set := map[int]bool{}
	if _, ok := t[root]; !ok {
		return set
	}
	children := map[int][]int{}
	for pid, p := range t {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if set[pid] {
			continue
		}
		set[pid] = true
		stack = append(stack, children[pid]...)
	}
	return set
}

// pidFromFile reads a daemon's pid file; 0 when absent or dead.
func pidFromFile(path string) daemonPID {
	return func() int {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return 0
		}
		if syscall.Kill(pid, 0) != nil {
			return 0
		}
		return pid
	}
}

// series is the samples of one case, in run order.
type series []sample

func medianDur(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianInt(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// median of each figure separately.
func (ss series) median() sample {
	var walls, cpus, clients, engines, steps []time.Duration
	var c, d, t []int64
	var notes []string
	rebuilt := -1
	for _, s := range ss {
		walls = append(walls, s.Wall)
		cpus = append(cpus, s.CPU)
		clients = append(clients, s.ClientCPU)
		engines = append(engines, s.EngineCPU)
		steps = append(steps, s.StepsCPU)
		c = append(c, s.ClientRSS)
		d = append(d, s.DaemonRSS)
		t = append(t, s.TreeRSS)
		if s.Rebuilt >= 0 && s.Rebuilt > rebuilt {
			rebuilt = s.Rebuilt
		}
		if s.Note != "" {
			notes = append(notes, s.Note)
		}
	}
	return sample{OnEngine: len(ss) > 0 && ss[0].OnEngine, Wall: medianDur(walls), CPU: medianDur(cpus), ClientCPU: medianDur(clients), EngineCPU: medianDur(engines), StepsCPU: medianDur(steps), ClientRSS: medianInt(c), DaemonRSS: medianInt(d), TreeRSS: medianInt(t), Rebuilt: rebuilt, Note: strings.Join(notes, "; ")}
}

// walls lists the runs' wall times, for the report.
func (ss series) walls() string {
	var p []string
	for _, s := range ss {
		p = append(p, fmt.Sprintf("%.2f", s.Wall.Seconds()))
	}
	return strings.Join(p, ", ")
}

func mb(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

// combine adds a second step of the same case (the floor builds one
// platform per go build invocation).
func combine(a, b sample) sample {
	out := a
	out.Wall += b.Wall
	out.CPU += b.CPU
	out.ClientCPU += b.ClientCPU
	out.EngineCPU += b.EngineCPU
	out.StepsCPU += b.StepsCPU
	out.ClientRSS = max(a.ClientRSS, b.ClientRSS)
	out.DaemonRSS = max(a.DaemonRSS, b.DaemonRSS)
	out.TreeRSS = max(a.TreeRSS, b.TreeRSS)
	return out
}
