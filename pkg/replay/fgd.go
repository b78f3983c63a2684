package replay

// FGDResult is the FGD paper's result on one openb variant: the published
// 10-seed mean at arrived = 100 % (the bar Tessera is held to) and the
// per-seed values behind it, seeds 42 to 51, from the paper's artifact
// (hkust-adsl/kubernetes-scheduler-simulator,
// experiments/analysis/expected_results/analysis_allo_discrete.csv, policy
// 06-FGD, column 100). Sample generates a seed's workload as the artifact
// does, so a seed here replays the pod sequence of the artifact's run with
// that seed, and the two compare seed by seed.
type FGDResult struct {
	Published float64
	PerSeed   [10]float64
}

// FGDFirstSeed is the seed of FGDResult.PerSeed[0].
const FGDFirstSeed = 42

// FGD returns the FGD artifact's result for an openb variant; ok is false
// for a variant it has none for.
func FGD(variant string) (FGDResult, bool) {
	r, ok := fgdResults[variant]
	return r, ok
}

var fgdResults = map[string]FGDResult{
	"default":    {95.2, [10]float64{95.14, 95.06, 95.29, 95.38, 95.35, 95.14, 95.18, 95.30, 95.15, 95.28}},
	"gpushare40": {93.96, [10]float64{94.06, 93.96, 93.93, 93.91, 93.82, 93.96, 94.00, 93.94, 93.95, 94.08}},
	"multigpu20": {95.53, [10]float64{95.38, 95.47, 95.82, 95.54, 95.52, 95.75, 95.36, 95.57, 95.32, 95.55}},
	"gpuspec10":  {94.66, [10]float64{94.49, 94.63, 94.71, 94.82, 94.69, 94.79, 94.81, 94.45, 94.32, 94.92}},
	"cpu050":     {95.00, [10]float64{95.16, 94.85, 95.01, 94.95, 94.92, 94.85, 95.01, 94.98, 95.17, 95.06}},
}

// Seeds returns the artifact's FGD results for the given seeds, or nil
// when one of them is outside the artifact's seeds.
func (r FGDResult) Seeds(seeds []int64) []float64 {
	out := make([]float64, 0, len(seeds))
	for _, s := range seeds {
		i := s - FGDFirstSeed
		if i < 0 || i >= int64(len(r.PerSeed)) {
			return nil
		}
		out = append(out, r.PerSeed[i])
	}
	return out
}

// PairedDiff is the mean of a[i] - b[i]: Tessera's lead over FGD on the
// same pod sequences.
func PairedDiff(a, b []float64) float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return Mean(d)
}

// SeedsAhead counts the seeds on which a is above b.
func SeedsAhead(a, b []float64) int {
	n := 0
	for i := range a {
		if a[i] > b[i] {
			n++
		}
	}
	return n
}
