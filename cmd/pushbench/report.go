package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// runResult is the figures of one run.
type runResult struct {
	Run       int `json:"run"`
	Delivered int `json:"delivered"` // pushsim's 200 answers during the campaign
	// UsersPerSec is Delivered over scheduled_at → the last 200 answer.
	UsersPerSec float64 `json:"users_per_s"`
	// FirstPushLateMS is scheduled_at → the first 200 answer.
	FirstPushLateMS float64 `json:"first_push_late_ms"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"` // pushd's VmHWM when the campaigns are done
	// CPUPer10k is pushd's user+system CPU seconds, start-up included,
	// per 10,000 pushes delivered.
	CPUPer10k float64 `json:"cpu_s_per_10k"`
	// DBReadPerBatchMS and DBWritePerBatchMS are the database probe's
	// medians (pushd stopped), through the store's own code: one
	// store.ClaimBatch (the audience read and the batch row) and one
	// store.Record of the batch's outcomes, each its own transaction.
	DBReadPerBatchMS  float64 `json:"db_read_per_batch_ms"`
	DBWritePerBatchMS float64 `json:"db_write_per_batch_ms"`
	ProbeBatches      int     `json:"probe_batches"`
	// SendPerBatchMS is batch_size over UsersPerSec: the time one batch
	// takes at the campaign's rate.
	SendPerBatchMS float64          `json:"send_per_batch_ms"`
	Providers      []providerResult `json:"providers"`
	// Cores are the cores each process used from scheduled_at until the
	// campaign rows said done.
	Cores cores `json:"cores"`
	// SimMicrosPerPush and DBMicrosPerPush are pushsim's and MariaDB's CPU
	// time in the same window per push delivered (MariaDB's includes
	// whatever else it served).
	SimMicrosPerPush float64 `json:"pushsim_cpu_us_per_push"`
	DBMicrosPerPush  float64 `json:"mariadb_cpu_us_per_push"`
	// CeilingPerSec is h2load's rate against the same pushsim, all
	// providers at once; Ratio is UsersPerSec over it.
	CeilingPerSec   float64 `json:"ceiling_per_s,omitempty"`
	Ratio           float64 `json:"ratio,omitempty"`
	CeilingSimCores float64 `json:"ceiling_pushsim_cores,omitempty"`
	// CeilingSimMicrosPerReq is pushsim's CPU time per h2load request.
	CeilingSimMicrosPerReq float64 `json:"ceiling_pushsim_cpu_us_per_req,omitempty"`
	CeilingH2loadCores     float64 `json:"ceiling_h2load_cores,omitempty"`
	// CeilingOtherCores is the rest of the machine during the ceiling.
	CeilingOtherCores float64        `json:"ceiling_other_cores,omitempty"`
	H2load            []h2loadResult `json:"h2load,omitempty"`
	SeedSeconds       float64        `json:"seed_s"`
	WallSeconds       float64        `json:"wall_s"` // the whole run, seeding and ceiling included
	LoadStart         float64        `json:"loadavg_start"`
	LoadEnd           float64        `json:"loadavg_end"`
	// IdleBefore and IdleBeforeCeiling are the machine's busy cores just
	// before pushd started and before h2load did (-1: not measured).
	IdleBefore        float64  `json:"busy_cores_before"`
	IdleBeforeCeiling float64  `json:"busy_cores_before_ceiling"`
	Problems          []string `json:"problems,omitempty"`
	// Kill9 is what the -kill9 restart duplicated.
	Kill9 *kill9Result `json:"kill9,omitempty"`
}

// providerResult is one provider's rate in a run.
type providerResult struct {
	Provider  string `json:"provider"`
	Delivered int    `json:"delivered"`
	// RunPerSec is the run row's sent over started_at → finished_at
	// (pushd_runs, DATETIME(3)): from the run's start to its last ledger
	// write.
	RunPerSec float64 `json:"run_per_s"`
	// SimPerSec is Delivered over pushsim's first → last 200.
	SimPerSec float64 `json:"sim_per_s"`
}

func (r runResult) provider(name string) providerResult {
	for _, p := range r.Providers {
		if p.Provider == name {
			return p
		}
	}
	return providerResult{}
}

func (r runResult) oneLine() string {
	s := fmt.Sprintf("%.0f users/s, first push %+.0f ms, peak RSS %.1f MiB, %.2f CPU s/10k, db read %.1f ms + write %.1f ms per batch",
		r.UsersPerSec, r.FirstPushLateMS, r.PeakRSSMiB, r.CPUPer10k, r.DBReadPerBatchMS, r.DBWritePerBatchMS)
	if r.CeilingPerSec > 0 {
		s += fmt.Sprintf(", h2load %.0f req/s, ratio %.2f", r.CeilingPerSec, r.Ratio)
	}
	if k := r.Kill9; k != nil {
		s += fmt.Sprintf(", kill -9: %d duplicates (%d sent and not recorded, %d at risk)", k.Duplicates, k.Unrecorded, k.AtRisk)
	}
	if len(r.Problems) > 0 {
		s += "; PROBLEMS: " + strings.Join(r.Problems, "; ")
	}
	return s
}

// metric is one row of the table.
type metric struct {
	key, label, format string
	get                func(runResult) float64
	only               string // shown only for this provider option ("" always)
}

var metrics = []metric{
	{"users_per_s", "users/s (scheduled → last answer)", "%.0f", func(r runResult) float64 { return r.UsersPerSec }, ""},
	{"ceiling_per_s", "h2load ceiling req/s", "%.0f", func(r runResult) float64 { return r.CeilingPerSec }, ""},
	{"ratio", "ratio to ceiling", "%.3f", func(r runResult) float64 { return r.Ratio }, ""},
	{"first_push_late_ms", "first push after scheduled_at, ms", "%.0f", func(r runResult) float64 { return r.FirstPushLateMS }, ""},
	{"peak_rss_mib", "pushd peak RSS, MiB", "%.1f", func(r runResult) float64 { return r.PeakRSSMiB }, ""},
	{"cpu_s_per_10k", "pushd CPU s per 10k pushes", "%.3f", func(r runResult) float64 { return r.CPUPer10k }, ""},
	{"db_read_per_batch_ms", "db claim per batch, ms (probe)", "%.2f", func(r runResult) float64 { return r.DBReadPerBatchMS }, ""},
	{"db_write_per_batch_ms", "db record per batch, ms (probe)", "%.2f", func(r runResult) float64 { return r.DBWritePerBatchMS }, ""},
	{"send_per_batch_ms", "send per batch, ms (batch / users/s)", "%.1f", func(r runResult) float64 { return r.SendPerBatchMS }, ""},
	{"apns_run_per_s", "APNs run row sent/s", "%.0f", func(r runResult) float64 { return r.provider(providerAPNs).RunPerSec }, providerAPNs},
	{"apns_sim_per_s", "APNs pushsim first→last /s", "%.0f", func(r runResult) float64 { return r.provider(providerAPNs).SimPerSec }, providerAPNs},
	{"fcm_run_per_s", "FCM run row sent/s", "%.0f", func(r runResult) float64 { return r.provider(providerFCM).RunPerSec }, providerFCM},
	{"fcm_sim_per_s", "FCM pushsim first→last /s", "%.0f", func(r runResult) float64 { return r.provider(providerFCM).SimPerSec }, providerFCM},
	{"pushsim_cpu_us_per_push", "pushsim CPU µs per push", "%.1f", func(r runResult) float64 { return r.SimMicrosPerPush }, ""},
	{"mariadb_cpu_us_per_push", "MariaDB CPU µs per push", "%.1f", func(r runResult) float64 { return r.DBMicrosPerPush }, ""},
	{"cores_pushd", "cores: pushd", "%.2f", func(r runResult) float64 { return r.Cores.Pushd }, ""},
	{"cores_pushsim", "cores: pushsim", "%.2f", func(r runResult) float64 { return r.Cores.Pushsim }, ""},
	{"cores_mariadb", "cores: MariaDB", "%.2f", func(r runResult) float64 { return r.Cores.MariaDB }, ""},
	{"cores_other", "cores: rest of the machine", "%.2f", func(r runResult) float64 { return r.Cores.Other }, ""},
	{"ceiling_pushsim_cores", "ceiling cores: pushsim", "%.2f", func(r runResult) float64 { return r.CeilingSimCores }, ""},
	{"ceiling_pushsim_cpu_us_per_req", "ceiling: pushsim CPU µs per request", "%.1f", func(r runResult) float64 { return r.CeilingSimMicrosPerReq }, ""},
	{"ceiling_h2load_cores", "ceiling cores: h2load", "%.2f", func(r runResult) float64 { return r.CeilingH2loadCores }, ""},
	{"ceiling_other_cores", "ceiling cores: rest of the machine", "%.2f", func(r runResult) float64 { return r.CeilingOtherCores }, ""},
	{"kill9_duplicates", "kill -9: duplicates", "%.0f", func(r runResult) float64 { return float64(kill9(r).Duplicates) }, kill9Only},
	{"kill9_unrecorded", "kill -9: sent, not recorded", "%.0f", func(r runResult) float64 { return float64(kill9(r).Unrecorded) }, kill9Only},
	{"kill9_at_risk", "kill -9: claimed, no outcome", "%.0f", func(r runResult) float64 { return float64(kill9(r).AtRisk) }, kill9Only},
	{"seed_s", "seed s", "%.1f", func(r runResult) float64 { return r.SeedSeconds }, ""},
	{"wall_s", "run wall s", "%.1f", func(r runResult) float64 { return r.WallSeconds }, ""},
	{"busy_cores_before", "busy cores before pushd", "%.2f", func(r runResult) float64 { return r.IdleBefore }, ""},
	{"busy_cores_before_ceiling", "busy cores before h2load", "%.2f", func(r runResult) float64 { return r.IdleBeforeCeiling }, ""},
	{"loadavg_start", "loadavg at start", "%.2f", func(r runResult) float64 { return r.LoadStart }, ""},
}

// kill9Only marks the rows of -kill9.
const kill9Only = "kill9"

func kill9(r runResult) kill9Result {
	if r.Kill9 == nil {
		return kill9Result{}
	}
	return *r.Kill9
}

func (m metric) shown(o reportOptions) bool {
	if m.only == kill9Only {
		return o.Kill9
	}
	return m.only == "" || o.Provider == providerBoth || o.Provider == m.only
}

type reportOptions struct {
	N           int    `json:"n"`
	Provider    string `json:"provider"`
	Batch       int    `json:"batch"`
	Concurrency int    `json:"concurrency"`
	Connections int    `json:"connections"`
	Runs        int    `json:"runs"`
	SegmentOf   int    `json:"segment_of,omitempty"`
	Capped      bool   `json:"frequency_cap,omitempty"`
	LocalTime   bool   `json:"local_time,omitempty"`
	Content     string `json:"content,omitempty"`
	PushIDs     bool   `json:"push_ids,omitempty"`
	Kill9       bool   `json:"kill9,omitempty"`
}

// report is everything printed at the end.
type report struct {
	Options    reportOptions      `json:"options"`
	Pushd      string             `json:"pushd"`
	Machine    machine            `json:"machine"`
	Server     serverInfo         `json:"mariadb"`
	H2loadNote string             `json:"h2load_note,omitempty"`
	LoadStart  float64            `json:"loadavg_start"`
	LoadEnd    float64            `json:"loadavg_end"`
	Runs       []runResult        `json:"runs"`
	Median     map[string]float64 `json:"median"`
	Min        map[string]float64 `json:"min"`
	Max        map[string]float64 `json:"max"`
	Problems   []string           `json:"problems,omitempty"`
}

func (rep *report) summarise() {
	rep.Median, rep.Min, rep.Max = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, m := range metrics {
		if !m.shown(rep.Options) {
			continue
		}
		vs := make([]float64, len(rep.Runs))
		for i, r := range rep.Runs {
			vs[i] = m.get(r)
		}
		rep.Median[m.key], rep.Min[m.key], rep.Max[m.key] = median(vs), slices.Min(vs), slices.Max(vs)
	}
	for _, r := range rep.Runs {
		for _, p := range r.Problems {
			rep.Problems = append(rep.Problems, fmt.Sprintf("run %d: %s", r.Run, p))
		}
	}
}

// print writes the table, then the JSON line.
func (rep *report) print(w io.Writer) error {
	o := rep.Options
	m := rep.Machine
	fmt.Fprintf(w, "\npushbench: N=%d provider=%s batch=%d concurrency=%d connections=%d runs=%d\n",
		o.N, o.Provider, o.Batch, o.Concurrency, o.Connections, o.Runs)
	fmt.Fprintf(w, "pushd %s; %d × %s, %.1f GiB, %s; MariaDB %s (buffer pool %d MiB, flush_log_at_trx_commit %d)\n",
		rep.Pushd, m.CPUs, m.CPUModel, m.MemoryGiB, m.GoVersion, rep.Server.Version, rep.Server.BufferPoolMiB, rep.Server.FlushLogAtCommit)
	fmt.Fprintf(w, "load average %.2f at start, %.2f at end (other work on the machine shares the cores)\n", rep.LoadStart, rep.LoadEnd)
	if rep.H2loadNote != "" {
		fmt.Fprintf(w, "ceiling: %s\n", rep.H2loadNote)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, r := range rep.Runs {
		fmt.Fprintf(tw, "run %d\t", r.Run)
	}
	fmt.Fprint(tw, "median\tmin\tmax\t\n")
	for _, mt := range metrics {
		if !mt.shown(o) {
			continue
		}
		fmt.Fprintf(tw, "%s\t", mt.label)
		for _, r := range rep.Runs {
			fmt.Fprintf(tw, mt.format+"\t", mt.get(r))
		}
		fmt.Fprintf(tw, mt.format+"\t"+mt.format+"\t"+mt.format+"\t\n", rep.Median[mt.key], rep.Min[mt.key], rep.Max[mt.key])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}

// median of vs (the mean of the middle two for an even count); NaN for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDuration(ds []time.Duration) time.Duration {
	vs := make([]float64, len(ds))
	for i, d := range ds {
		vs[i] = float64(d)
	}
	return time.Duration(median(vs))
}
