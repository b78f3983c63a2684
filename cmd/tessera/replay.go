package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tessera-sched/tessera/pkg/replay"
)

type replayOptions struct {
	traceDir, variant, nodes, pods, seeds, profile, plot string
	inflate                                              float64
	baseline, asJSON                                     bool
	maxPods                                              int
}

func newReplayCommand() *cobra.Command {
	o := replayOptions{}
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay a production GPU trace through the real scheduler and report the GPU allocation ratio",
		Long: `replay schedules a GPU cluster trace in the openb format (Alibaba's
cluster-trace-gpu-v2023, from the FGD paper, USENIX ATC'23) with the real
scheduler framework and Tessera's real plugins, in this process, following the
paper's method and its simulator's workload generation, so that a seed here
replays the same pod sequence as the paper's run with that seed: the trace's
pods in a shuffled order, then pods drawn with replacement until their GPU
request reaches --inflate x the cluster's GPU capacity; schedule one pod at a
time on every feasible node, drop what does not fit, never delete.

It reports the GPU allocation ratio at arrived = 100 % (GPU placed / capacity,
averaged over the arrivals whose requested / capacity rounds, half to even,
to 100 %), per seed and averaged, and the whole curve. --baseline also replays upstream's default
scoring (with Tessera's device-level feasibility) in the same run.

Examples:
  tessera replay --variant default --seeds 42-51 --baseline --plot replay.png
  tessera replay --nodes nodes.csv --pods pods.csv --seeds 42 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runReplay(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.traceDir, "trace-dir", "../shared/data/openb", "directory of the openb trace, used with --variant")
	f.StringVar(&o.variant, "variant", "default", "trace variant: default, gpushare40, multigpu20, gpuspec10 or cpu050 (reads openb_pod_list_<variant>.csv)")
	f.StringVar(&o.nodes, "nodes", "", "node CSV (default: <trace-dir>/openb_node_list_gpu_node.csv)")
	f.StringVar(&o.pods, "pods", "", "pod CSV (default: <trace-dir>/openb_pod_list_<variant>.csv)")
	f.StringVar(&o.seeds, "seeds", "42-51", "seeds: a list and/or ranges, e.g. 42-51 or 42,45")
	f.Float64Var(&o.inflate, "inflate", 1.3, "top the trace up with pods drawn with replacement until their GPU request reaches this multiple of the GPU capacity")
	f.StringVar(&o.profile, "profile", "tessera", "profile: tessera (the shipped configuration) or baseline (upstream default scoring)")
	f.BoolVar(&o.baseline, "baseline", false, "also replay the baseline profile in the same run")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object instead of a table")
	f.StringVar(&o.plot, "plot", "", "write the allocation curves as a PNG to this file")
	f.IntVar(&o.maxPods, "max-pods", 0, "stop each seed after this many pods (0: the paper's method, no limit)")
	return cmd
}

func runReplay(ctx context.Context, out, errOut io.Writer, o replayOptions) error {
	seeds, err := parseSeeds(o.seeds)
	if err != nil {
		return err
	}
	nodesPath := o.nodes
	if nodesPath == "" {
		nodesPath = filepath.Join(o.traceDir, "openb_node_list_gpu_node.csv")
	}
	podsPath := o.pods
	if podsPath == "" {
		podsPath = filepath.Join(o.traceDir, "openb_pod_list_"+o.variant+".csv")
	}
	nodes, err := replay.ReadNodesFile(nodesPath)
	if err != nil {
		return err
	}
	pods, err := replay.ReadPodsFile(podsPath)
	if err != nil {
		return err
	}
	profiles := []replay.Profile{replay.Profile(o.profile)}
	if o.baseline && o.profile != string(replay.ProfileBaseline) {
		profiles = append(profiles, replay.ProfileBaseline)
	}
	var results []*replay.Result
	for _, p := range profiles {
		prog := newProgress(errOut, p)
		res, err := replay.Run(ctx, replay.Options{Nodes: nodes, Pods: pods, Seeds: seeds, Inflate: o.inflate, Profile: p, MaxPods: o.maxPods, Progress: prog.update})
		prog.finish()
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	var refs []replay.Reference
	var fgdPerSeed []float64
	if r, ok := replay.FGD(o.variant); ok && o.pods == "" && o.inflate == 1.3 && o.maxPods == 0 {
		refs = append(refs, replay.Reference{Label: "FGD (published)", Allocated: r.Published})
		fgdPerSeed = r.Seeds(seeds)
	}
	if o.plot != "" {
		title := fmt.Sprintf("openb %s, %d seeds, inflate %.1f", o.variant, len(seeds), o.inflate)
		if err := replay.WritePlot(o.plot, title, results, refs); err != nil {
			return fmt.Errorf("writing the plot: %w", err)
		}
	}
	if o.asJSON {
		type doc struct {
			*replay.Result
			Variant   string         `json:"variant,omitempty"`
			Baseline  *replay.Result `json:"baseline,omitempty"`
			Published *float64       `json:"fgd_published_at_100,omitempty"`
			// FGDPerSeed are the FGD artifact's results for the same seeds
			// (same pod sequences), FGDDiff the mean of tessera - FGD.
			FGDPerSeed []float64 `json:"fgd_artifact_per_seed,omitempty"`
			FGDDiff    *float64  `json:"paired_diff_vs_fgd,omitempty"`
		}
		d := doc{Result: results[0], Variant: o.variant}
		if len(results) > 1 {
			d.Baseline = results[1]
		}
		if len(refs) > 0 {
			d.Published = &refs[0].Allocated
		}
		if fgdPerSeed != nil {
			diff := replay.PairedDiff(results[0].PerSeed, fgdPerSeed)
			d.FGDPerSeed, d.FGDDiff = fgdPerSeed, &diff
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	fmt.Fprintf(out, "Trace %s: %d nodes, %d GPUs; seeds %s; inflate %.2f\n\n", podsPath, results[0].Nodes, results[0].GPUs, o.seeds, o.inflate)
	fmt.Fprintf(out, "%-10s %10s  %s\n", "PROFILE", "AT 100%", "PER SEED")
	for _, r := range results {
		per := make([]string, len(r.PerSeed))
		for i, v := range r.PerSeed {
			per[i] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(out, "%-10s %9.2f%%  %s   (%.0fs)\n", r.Profile, r.AllocAt100, strings.Join(per, " "), r.TotalDuration)
	}
	for _, ref := range refs {
		if fgdPerSeed == nil {
			fmt.Fprintf(out, "%-10s %9.2f%%  (published, paper's artifact)\n", "FGD", ref.Allocated)
			continue
		}
		per := make([]string, len(fgdPerSeed))
		for i, v := range fgdPerSeed {
			per[i] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(out, "%-10s %9.2f%%  %s   (paper's artifact, same pod sequences; published mean %.2f%%)\n", "FGD", replay.Mean(fgdPerSeed), strings.Join(per, " "), ref.Allocated)
		fmt.Fprintf(out, "%s - FGD, seed by seed: %+.2f points on average, ahead on %d of %d seeds\n", results[0].Profile,
			replay.PairedDiff(results[0].PerSeed, fgdPerSeed), replay.SeedsAhead(results[0].PerSeed, fgdPerSeed), len(fgdPerSeed))
	}
	for _, r := range results {
		printBreakdown(out, r)
	}
	if o.plot != "" {
		fmt.Fprintf(out, "\nPlot: %s\n", o.plot)
	}
	return nil
}

func parseSeeds(s string) ([]int64, error) {
	var out []int64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseInt(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--seeds: %q is not a seed or range", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseInt(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("--seeds: %q is not a valid range", part)
			}
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--seeds: no seeds in %q", s)
	}
	return out, nil
}

// progress shows per-seed progress: a line rewritten in place on a
// terminal, a line per seed otherwise.
type progress struct {
	w        io.Writer
	profile  replay.Profile
	tty      bool
	seed     int64
	start    time.Time
	lastDraw time.Time
}

func newProgress(w io.Writer, p replay.Profile) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, profile: p, tty: tty, seed: -1}
}

func (p *progress) update(seed int64, done, total int) {
	now := time.Now()
	if seed != p.seed {
		p.seed, p.start = seed, now
	}
	if done == total {
		rate := float64(total) / now.Sub(p.start).Seconds()
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "  %s seed %d: %d pods in %.1fs (%.0f pods/s)\n", p.profile, seed, total, now.Sub(p.start).Seconds(), rate)
		return
	}
	if p.tty && now.Sub(p.lastDraw) > 200*time.Millisecond {
		p.lastDraw = now
		fmt.Fprintf(p.w, "\r\033[K  %s seed %d: %d/%d pods (%.0f%%)", p.profile, seed, done, total, float64(done)*100/float64(total))
	}
}

func (p *progress) finish() {}

// printBreakdown tells where the capacity that is not allocated is when
// arrived reaches 100 %, averaged over the seeds: what to look at before
// tuning a placement policy.
func printBreakdown(out io.Writer, r *replay.Result) {
	if r.GPUs == 0 || len(r.Seeds) == 0 {
		return
	}
	b := replay.MeanBreakdown(r.Seeds)
	over := "seed " + strconv.FormatInt(r.Seeds[0].Seed, 10)
	if len(r.Seeds) > 1 {
		over = fmt.Sprintf("mean over %d seeds", len(r.Seeds))
	}
	fmt.Fprintf(out, "\nAt arrived = %.0f%% (%s, %s): allocated %.2f%%\n", b.Arrived, r.Profile, over, b.Allocated)
	gaps := make([]string, 0, 4)
	for i, g := range b.Gaps {
		if i == 4 {
			break
		}
		gaps = append(gaps, fmt.Sprintf("%dm on %d", g.FreeMilli, g.GPUs))
	}
	fmt.Fprintf(out, "  %-26s %5.2f%%  (free milli-GPU on each: %s)\n", "free on partly used GPUs", b.PartlyUsedFree, strings.Join(gaps, ", "))
	fmt.Fprintf(out, "  %-26s %5.2f%%  (%d GPUs, %d of them on nodes without the CPU or memory of a median 1-GPU pod)\n",
		"idle GPUs", float64(b.IdleGPUs)*100/float64(r.GPUs), b.IdleGPUs, b.IdleGPUsStranded)
	dropped := make([]string, 0, len(b.Dropped))
	total := 0.0
	for _, d := range b.Dropped {
		total += d.GPU
		dropped = append(dropped, fmt.Sprintf("%s %d (%.2f%%)", d.Kind, d.Pods, d.GPU))
	}
	fmt.Fprintf(out, "  %-26s %5.2f%%  (pods: %s)\n", "dropped until then", total, strings.Join(dropped, ", "))
}
