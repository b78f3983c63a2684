package gpu

import "strings"

// WeighByScarcity returns classes with the weight of every class limited to
// some GPU products (Class.Products) multiplied by how scarce the capacity
// it can use is: the cluster's free GPU capacity divided by the free
// capacity on the products the class allows. freeByProduct is the free GPU
// capacity, in milli-GPUs, of the cluster's nodes by GPU product. Classes
// without a limit keep their weight; so does a limited class none of whose
// products has free capacity left (nothing is left to protect for it).
//
// Why: FGD's fragmentation counts capacity a class cannot use the same
// whether the class has somewhere else to go or not. A pod that may run
// anywhere then fills the small nodes of a rare GPU model first (they were
// "fragmented" for big requests anyway), and the pods that can run only on
// that model find it full while most of the cluster is empty: on the openb
// trace with 10% of pods limited to GPU models, that was the largest loss.
// Weighting a limited class by the inverse of the share of free capacity it
// can reach steers the others away from its models while the rest of the
// cluster has room, and fades to its plain weight as the rest fills up.
//
// classes is returned unchanged, not copied, when no class is limited.
func WeighByScarcity(classes []WeightedClass, freeByProduct map[string]int64) []WeightedClass {
	limited := false
	for i := range classes {
		if classes[i].Products != "" {
			limited = true
			break
		}
	}
	if !limited {
		return classes
	}
	var total int64
	for _, f := range freeByProduct {
		total += f
	}
	out := make([]WeightedClass, len(classes))
	copy(out, classes)
	for i := range out {
		if out[i].Products == "" {
			continue
		}
		var usable int64
		for _, p := range strings.Split(out[i].Products, "|") {
			usable += freeByProduct[p]
		}
		if usable > 0 {
			out[i].Weight *= float64(total) / float64(usable)
		}
	}
	return out
}
