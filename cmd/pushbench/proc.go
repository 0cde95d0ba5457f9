package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc CPU times.
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100 // every Linux architecture Go supports
}()

// procCPU is the user+system CPU time of process pid, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(data)
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name, field 2, may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseProcStat(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat %q: no command name", data)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat %q: %d fields", data, len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat %q: bad utime or stime", data)
	}
	return ticks(float64(ut + st)), nil
}

func ticks(n float64) time.Duration {
	return time.Duration(n / clockTicks * float64(time.Second))
}

// peakRSS is VmHWM of process pid: its peak resident set, in bytes.
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(data, "VmHWM")
}

// parseStatusKB reads a "Key:   123 kB" line of /proc/PID/status, in bytes.
func parseStatusKB(data []byte, key string) (int64, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status %s: %q", key, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status %s: %w", key, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("proc status: no %s", key)
}

// machineCPU is the machine's busy CPU time (every state but idle and
// iowait, over all CPUs) from /proc/stat.
func machineCPU() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachineStat(data)
}

func parseMachineStat(data []byte) (time.Duration, error) {
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var busy float64
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q: %w", s, err)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user and nice.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += float64(v)
	}
	return ticks(busy), nil
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// cpuSample is the CPU time of the processes that share the machine in a
// run, and of the whole machine, at one instant.
type cpuSample struct {
	at                    time.Time
	pushd, sim, db, total time.Duration
}

// sampleCPU reads the CPU times; a process that cannot be read (dbPID 0:
// the server is elsewhere) counts 0.
func sampleCPU(pushdPID, simPID, dbPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	s.pushd, _ = procCPU(pushdPID)
	s.sim, _ = procCPU(simPID)
	if dbPID > 0 {
		s.db, _ = procCPU(dbPID)
	}
	s.total, _ = machineCPU()
	return s
}

// cores is how many cores each consumer used on average between a and b.
type cores struct {
	Pushd   float64 `json:"pushd"`
	Pushsim float64 `json:"pushsim"`
	MariaDB float64 `json:"mariadb"`
	// Other is the rest of the machine: other sessions, the kernel's own
	// threads, pushbench.
	Other float64 `json:"other"`
}

func coresBetween(a, b cpuSample) cores {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return cores{}
	}
	c := cores{
		Pushd:   (b.pushd - a.pushd).Seconds() / wall,
		Pushsim: (b.sim - a.sim).Seconds() / wall,
		MariaDB: (b.db - a.db).Seconds() / wall,
	}
	c.Other = max(0, (b.total-a.total).Seconds()/wall-c.Pushd-c.Pushsim-c.MariaDB)
	return c
}

// machine describes the host, for the record.
type machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if b, err := parseStatusKB(data, "MemTotal"); err == nil {
			m.MemoryGiB = float64(b) / (1 << 30)
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}
