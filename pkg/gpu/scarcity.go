package gpu

// WeighByScarcity returns classes with each class's weight multiplied by how
// scarce the room left for it is: the cluster's free GPU capacity divided by
// the part of it the class could use (reach[i], for classes[i], the sum of
// NodeState.Reach over the cluster's nodes). free is the cluster's free GPU
// capacity, in milli-GPUs. A class with room everywhere keeps its weight; so
// does one with no room left at all (nothing is left to protect for it).
// classes is not modified.
//
// Why: FGD's fragmentation counts capacity a class cannot use the same
// whether the class has plenty of room elsewhere or none. Two losses came
// from that. On the openb trace with 10% of pods limited to GPU models, pods
// that may run anywhere filled the small nodes of rare models first (they
// were "fragmented" for big requests anyway), and the pods that can run only
// on those models found them full while most of the cluster was empty. And
// as any cluster fills, the room for big requests (whole GPUs, empty nodes)
// shrinks much faster than the room for small shares, but a pod deciding
// where to break up free capacity weighs them as if both were plentiful.
// Weighting each class by the inverse of the share of free capacity it can
// still reach protects what is scarce, and fades to the plain weight while
// a class has room everywhere. Its measured effect is in docs/benchmarks.md
// ("Where the scoring constants come from").
func WeighByScarcity(classes []WeightedClass, reach []int64, free int64) []WeightedClass {
	out := make([]WeightedClass, len(classes))
	copy(out, classes)
	if free <= 0 {
		return out
	}
	for i := range out {
		if r := reach[i]; r > 0 && r < free {
			out[i].Weight *= float64(free) / float64(r)
		}
	}
	return out
}
