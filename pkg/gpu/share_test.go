package gpu

import (
	"math"
	"testing"
)

// shares is an assignment of one share per (GPU, milli) pair.
func shares(pairs ...int) Assignment {
	var a Assignment
	for i := 0; i+1 < len(pairs); i += 2 {
		a.Shares = append(a.Shares, Share{GPU: pairs[i], Milli: pairs[i+1]})
	}
	return a
}

func TestBestShare(t *testing.T) {
	mix := []WeightedClass{{Class{GPUs: 1}, 0.5}, {Class{ShareMilli: 500}, 0.5}}
	ample := NonGPU{CPUMilli: -1, MemoryMiB: -1}
	tests := []struct {
		name    string
		topo    Topology
		held    []Assignment
		chosen  Assignment
		milli   int
		classes []WeightedClass
		// wantGPU is the GPU the share must end on.
		wantGPU int
	}{
		{
			// Three GPUs of different free capacity (500, 700, 1000): the
			// share must go where the measure is smallest, checked against
			// every GPU below.
			name:    "joins the GPU the measure prefers",
			topo:    DefaultTopology("NVIDIA-H100-80GB-HBM3", 4),
			held:    []Assignment{shares(0, 500), shares(1, 300)},
			chosen:  shares(0, 300),
			milli:   300,
			classes: mix,
			wantGPU: -1, // the brute-force minimum
		},
		{
			name:    "a half share joins the half-used GPU rather than break a whole one",
			topo:    DefaultTopology("NVIDIA-H100-80GB-HBM3", 2),
			held:    []Assignment{shares(0, 500)},
			chosen:  shares(1, 500),
			milli:   500,
			classes: mix,
			wantGPU: 0,
		},
		{
			name:    "ties keep the chosen GPU",
			topo:    DefaultTopology("NVIDIA-H100-80GB-HBM3", 3),
			chosen:  shares(2, 250),
			milli:   250,
			classes: mix,
			wantGPU: 2,
		},
		{
			name: "whole GPUs held and MIG GPUs are never chosen",
			topo: func() Topology {
				t := DefaultTopology("NVIDIA-A100-SXM4-80GB", 3)
				t.GPUs[2].MIG = MIGDynamic
				return t
			}(),
			held:    []Assignment{whole(0)},
			chosen:  shares(1, 100),
			milli:   100,
			classes: []WeightedClass{{Class{ShareMilli: 900}, 1}},
			wantGPU: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(tt.topo)
			for _, a := range tt.held {
				mustAdd(t, s, a)
			}
			got, delta, err := s.BestShare(tt.chosen, tt.milli, ample, ample, tt.classes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Shares) != 1 || got.Shares[0].Milli != tt.milli || len(got.GPUs) != 0 || len(got.MIG) != 0 {
				t.Fatalf("BestShare = %+v, want one share of %d", got, tt.milli)
			}
			want, err := FragmentationDelta(s, got, ample, ample, tt.classes)
			if err != nil || math.Abs(want-delta) > 1e-9 {
				t.Errorf("returned delta %v, the assignment's is %v (%v)", delta, want, err)
			}
			// No GPU that can take the share does better.
			for _, g := range s.GPUs() {
				if g.GPU.MIG != MIGDisabled || g.Use == UseWhole || g.FreeMilli < int64(tt.milli) {
					if g.GPU.Index == got.Shares[0].GPU {
						t.Errorf("share put on GPU %d (use %v, MIG %v, free %d)", g.GPU.Index, g.Use, g.GPU.MIG, g.FreeMilli)
					}
					continue
				}
				d, err := FragmentationDelta(s, shares(g.GPU.Index, tt.milli), ample, ample, tt.classes)
				if err == nil && d < delta-1e-9 {
					t.Errorf("GPU %d raises fragmentation by %v, less than the chosen GPU %d's %v", g.GPU.Index, d, got.Shares[0].GPU, delta)
				}
			}
			if tt.wantGPU >= 0 && got.Shares[0].GPU != tt.wantGPU {
				t.Errorf("share on GPU %d, want %d", got.Shares[0].GPU, tt.wantGPU)
			}
			if err := s.Add(got); err != nil {
				t.Errorf("chosen share does not fit: %v", err)
			}
		})
	}
}

func TestBestShareUnmeasurable(t *testing.T) {
	s := NewNodeState(DefaultTopology("NVIDIA-H100-80GB-HBM3", 1))
	bad := shares(5, 100) // no GPU 5
	got, _, err := s.BestShare(bad, 100, NonGPU{CPUMilli: -1, MemoryMiB: -1}, NonGPU{CPUMilli: -1, MemoryMiB: -1}, []WeightedClass{{Class{GPUs: 1}, 1}})
	if err == nil {
		t.Fatalf("BestShare of an assignment outside the node = %+v, want an error", got)
	}
	if len(got.Shares) != 1 || got.Shares[0].GPU != 5 {
		t.Errorf("on error BestShare must return the chosen assignment, got %+v", got)
	}
}
