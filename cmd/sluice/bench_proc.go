package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The node processes a benchmark watches or kills are found through the
// pid files scripts/cluster.sh writes: <pid-dir>/<node id>.pid.

// defaultPidDir is where scripts/cluster.sh keeps its pid files.
func defaultPidDir() string { return envOr("SLUICE_DATA", "./data") }

// readPidFile returns the pid in <dir>/<id>.pid.
func readPidFile(dir, id string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, id+".pid"))
	if err != nil {
		return 0, fmt.Errorf("pid of node %s: %w", id, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file of node %s: %q is not a pid", id, b)
	}
	return pid, nil
}

// nodePids returns every node id → pid with a pid file in dir.
func nodePids(dir string) (map[string]int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return nil, err
	}
	pids := map[string]int{}
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".pid")
		pid, err := readPidFile(dir, id)
		if err != nil {
			return nil, err
		}
		pids[id] = pid
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no node pid files (*.pid) in %s: set --pid-dir to the cluster's SLUICE_DATA", dir)
	}
	return pids, nil
}

func sortedIDs(m map[string]int) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ is
// 100 on every Linux architecture Go supports.
const userHZ = 100

// procCPU returns the CPU time (user + system) the process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procRSS returns the resident set size (VmRSS) in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// procGone reports whether the process has exited (or is a zombie).
func procGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// cpuSample is the CPU and memory use of some processes over an interval.
type cpuSample struct {
	// CPUPct is the CPU time used over the interval in % of one core.
	CPUPct float64 `json:"cpu_pct"`
	RSSMB  float64 `json:"rss_mb"`
}

// sampleProcs measures each pid's CPU over interval and its RSS at the end.
func sampleProcs(pids map[string]int, interval time.Duration, sleep func(time.Duration) error) (map[string]cpuSample, error) {
	before := map[string]time.Duration{}
	for id, pid := range pids {
		t, err := procCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		before[id] = t
	}
	start := time.Now()
	if err := sleep(interval); err != nil {
		return nil, err
	}
	wall := time.Since(start)
	out := map[string]cpuSample{}
	for id, pid := range pids {
		t, err := procCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		rss, err := procRSS(pid)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		out[id] = cpuSample{CPUPct: 100 * (t - before[id]).Seconds() / wall.Seconds(), RSSMB: float64(rss) / (1 << 20)}
	}
	return out, nil
}

// removePidFile removes <dir>/<id>.pid if it still names pid.
func removePidFile(dir, id string, pid int) error {
	got, err := readPidFile(dir, id)
	if err != nil || got != pid {
		return nil // already replaced or gone
	}
	if err := os.Remove(filepath.Join(dir, id+".pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pid file of %s: %w", id, err)
	}
	return nil
}
