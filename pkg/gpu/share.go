package gpu

import "slices"

// BestShare chooses the GPU for a share of shareMilli on the node: the one
// whose use raises the node's fragmentation (FragmentationDelta against
// classes) the least, so that the device, not only the node, is chosen the
// FGD way. chosen is the share assignment Allocate made, kept on ties (its
// best fit). GPUs with the same free capacity are interchangeable for the
// fragmentation measure, so one of each is tried. It returns the
// assignment and its fragmentation increase; an error only when chosen
// cannot be measured.
func (s *NodeState) BestShare(chosen Assignment, shareMilli int, free, after NonGPU, classes []WeightedClass) (Assignment, float64, error) {
	best, err := FragmentationDelta(s, chosen, free, after, classes)
	if err != nil {
		return chosen, 0, err
	}
	var triedBuf [16]int64
	tried := triedBuf[:0]
	for _, g := range s.GPUs() {
		if g.GPU.MIG != MIGDisabled || (g.Use != UseFree && g.Use != UseShared) || g.FreeMilli < int64(shareMilli) || slices.Contains(tried, g.FreeMilli) {
			continue
		}
		tried = append(tried, g.FreeMilli)
		a := Assignment{Shares: []Share{{GPU: g.GPU.Index, Milli: shareMilli}}}
		d, err := FragmentationDelta(s, a, free, after, classes)
		if err == nil && d < best-1e-9 {
			best, chosen = d, a
		}
	}
	return chosen, best, nil
}
