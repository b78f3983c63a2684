package gpu

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// AnnotationAssignment is the pod annotation in which the scheduler records
// the devices it gave the pod, in the encoding of MarshalAssignment. The node
// agent reads it to hand the devices to the container, and every scheduler
// replica reads it to rebuild NodeState after a restart.
const AnnotationAssignment = "tessera.dev/gpu-assignment"

// AnnotationRealized is the pod annotation in which the node agent records
// the devices the kubelet really gave the pod, in the same encoding, when
// they are not its assignment: pods placed by another scheduler, or a node
// that did otherwise than the scheduler chose. Where it is set, it is what
// the pod holds.
const AnnotationRealized = "tessera.dev/gpu-realized"

// AssignmentVersion is the version of the annotation encoding that
// MarshalAssignment writes and UnmarshalAssignment reads. It changes only
// when a reader of an older version would misread the new data.
const AssignmentVersion = 1

// MIGSlot is one MIG instance held by a pod: the profile on a GPU, starting
// at a memory slice. It names either an existing instance or one that a node
// agent is to create on a MIG-dynamic GPU.
type MIGSlot struct {
	GPU     int
	Profile string
	Start   int
}

// Share is a part of one GPU held by a pod, in milli-GPUs (1..999).
type Share struct {
	GPU   int
	Milli int
}

// Assignment is what one pod holds on one node. A GPU appears in at most one
// of the three lists: it is used whole, by shares or by MIG, never two of
// these.
type Assignment struct {
	// GPUs are the indices of the whole GPUs.
	GPUs []int
	// MIG are the MIG instances.
	MIG []MIGSlot
	// Shares are the GPU shares; at most one per GPU.
	Shares []Share
	// UUIDs optionally lists the UUID of every device in Devices() order, so
	// that a node agent can hand devices out without looking indices up; it
	// is nil when unknown. See WithUUIDs.
	UUIDs []string
}

// IsZero reports whether a holds no device.
func (a Assignment) IsZero() bool {
	return len(a.GPUs) == 0 && len(a.MIG) == 0 && len(a.Shares) == 0
}

// Devices returns the distinct GPU indices a touches, ascending. It is the
// order of UUIDs.
func (a Assignment) Devices() []int {
	out := make([]int, 0, len(a.GPUs)+len(a.MIG)+len(a.Shares))
	out = append(out, a.GPUs...)
	for _, m := range a.MIG {
		out = append(out, m.GPU)
	}
	for _, s := range a.Shares {
		out = append(out, s.GPU)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// WithUUIDs returns a copy of a whose UUIDs are taken from t, for writing
// into the annotation. If t lacks the UUID of any device, UUIDs is nil: a
// partial list would be misread.
func (a Assignment) WithUUIDs(t Topology) Assignment {
	devs := a.Devices()
	uuids := make([]string, len(devs))
	for i, d := range devs {
		for _, g := range t.GPUs {
			if g.Index == d {
				uuids[i] = g.UUID
				break
			}
		}
		if uuids[i] == "" {
			uuids = nil
			break
		}
	}
	out := a.Normalize()
	out.UUIDs = uuids
	return out
}

// Milli is the assignment's size in milli-GPUs, counted as
// Request.GPUEquivalentMilli counts a request.
func (a Assignment) Milli() int64 {
	r := Request{GPUs: len(a.GPUs)}
	for _, m := range a.MIG {
		r.MIG = append(r.MIG, MIGRequest{Profile: m.Profile, Count: 1})
	}
	for _, s := range a.Shares {
		r.ShareMilli += s.Milli
	}
	return r.GPUEquivalentMilli()
}

// Normalize returns a copy of a with its lists sorted (whole GPUs by index,
// MIG slots by GPU, start and profile, shares by GPU), the canonical form in
// which assignments are compared and encoded. Empty lists become nil.
func (a Assignment) Normalize() Assignment {
	out := Assignment{
		GPUs:   slices.Clone(a.GPUs),
		MIG:    slices.Clone(a.MIG),
		Shares: slices.Clone(a.Shares),
		UUIDs:  slices.Clone(a.UUIDs),
	}
	slices.Sort(out.GPUs)
	slices.SortFunc(out.MIG, func(x, y MIGSlot) int {
		if x.GPU != y.GPU {
			return x.GPU - y.GPU
		}
		if x.Start != y.Start {
			return x.Start - y.Start
		}
		switch {
		case x.Profile < y.Profile:
			return -1
		case x.Profile > y.Profile:
			return 1
		}
		return 0
	})
	slices.SortFunc(out.Shares, func(x, y Share) int {
		if x.GPU != y.GPU {
			return x.GPU - y.GPU
		}
		return x.Milli - y.Milli
	})
	if len(out.GPUs) == 0 {
		out.GPUs = nil
	}
	if len(out.MIG) == 0 {
		out.MIG = nil
	}
	if len(out.Shares) == 0 {
		out.Shares = nil
	}
	if len(out.UUIDs) == 0 {
		out.UUIDs = nil
	}
	return out
}

// Validate checks what can be checked without the node's topology: indices
// are not negative, no GPU is listed twice or in two lists, MIG profiles are
// well formed with starts in 0..7, shares are 1..999 milli and UUIDs, if
// present, match the devices. The error names the JSON field and value.
func (a Assignment) Validate() error {
	use := map[int]string{}
	claim := func(field string, gpu int, how string) error {
		if gpu < 0 {
			return fmt.Errorf("%s: negative GPU index %d", field, gpu)
		}
		prev, ok := use[gpu]
		switch {
		case !ok:
			use[gpu] = how
			return nil
		case prev != how:
			return fmt.Errorf("%s: GPU %d is used both %s and %s", field, gpu, prev, how)
		case how != "by MIG":
			return fmt.Errorf("%s: GPU %d listed twice", field, gpu)
		}
		return nil
	}
	for i, g := range a.GPUs {
		if err := claim(fmt.Sprintf("gpus[%d]", i), g, "whole"); err != nil {
			return err
		}
	}
	starts := map[[2]int]bool{}
	for i, m := range a.MIG {
		field := fmt.Sprintf("mig[%d]", i)
		if err := claim(field+".gpu", m.GPU, "by MIG"); err != nil {
			return err
		}
		if _, _, ok := parseProfileName(m.Profile); !ok {
			return fmt.Errorf("%s.profile: malformed MIG profile %q", field, m.Profile)
		}
		if m.Start < 0 || m.Start >= MIGMemorySlices {
			return fmt.Errorf("%s.start: %d is out of range 0..%d", field, m.Start, MIGMemorySlices-1)
		}
		key := [2]int{m.GPU, m.Start}
		if starts[key] {
			return fmt.Errorf("%s.start: GPU %d start %d listed twice", field, m.GPU, m.Start)
		}
		starts[key] = true
	}
	for i, s := range a.Shares {
		field := fmt.Sprintf("shares[%d]", i)
		if err := claim(field+".gpu", s.GPU, "by shares"); err != nil {
			return err
		}
		if s.Milli < 1 || s.Milli > 999 {
			return fmt.Errorf("%s.milli: %d is out of range 1..999", field, s.Milli)
		}
	}
	if a.UUIDs != nil {
		if n := len(use); len(a.UUIDs) != n {
			return fmt.Errorf("uuids: %d entries for %d devices", len(a.UUIDs), n)
		}
		for i, u := range a.UUIDs {
			if u == "" {
				return fmt.Errorf("uuids[%d]: empty UUID", i)
			}
		}
	}
	return nil
}

// assignmentJSON is the version-1 wire form of Assignment:
//
//	{"v":1,"gpus":[0,1],"uuids":["GPU-…","GPU-…","GPU-…"],
//	 "mig":[{"gpu":3,"profile":"3g.40gb","start":4}],
//	 "shares":[{"gpu":2,"milli":250}]}
//
// Every list may be left out when empty; "v" is required.
type assignmentJSON struct {
	V      *int        `json:"v"`
	GPUs   []int       `json:"gpus,omitempty"`
	UUIDs  []string    `json:"uuids,omitempty"`
	MIG    []migJSON   `json:"mig,omitempty"`
	Shares []shareJSON `json:"shares,omitempty"`
}

type migJSON struct {
	GPU     int    `json:"gpu"`
	Profile string `json:"profile"`
	Start   int    `json:"start"`
}

type shareJSON struct {
	GPU   int `json:"gpu"`
	Milli int `json:"milli"`
}

// errAssignment prefixes every encoding error so that a person reading an
// event knows which annotation is wrong.
var errAssignment = errors.New("annotation " + AnnotationAssignment)

// MarshalAssignment encodes a in its canonical form (see Normalize) for the
// tessera.dev/gpu-assignment annotation. It refuses an assignment that
// Validate rejects rather than write something no reader accepts.
func MarshalAssignment(a Assignment) (string, error) {
	if err := a.Validate(); err != nil {
		return "", fmt.Errorf("%w: %w", errAssignment, err)
	}
	a = a.Normalize()
	v := AssignmentVersion
	w := assignmentJSON{V: &v, GPUs: a.GPUs, UUIDs: a.UUIDs}
	for _, m := range a.MIG {
		w.MIG = append(w.MIG, migJSON(m))
	}
	for _, s := range a.Shares {
		w.Shares = append(w.Shares, shareJSON(s))
	}
	b, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errAssignment, err)
	}
	return string(b), nil
}

// UnmarshalAssignment decodes an annotation written by MarshalAssignment.
// It fails, naming the field and value, on malformed JSON, a missing or
// unsupported version and on anything Validate rejects. Fields it does not
// know are ignored, so that a later version 1 writer may add optional ones.
// The result is in canonical form.
func UnmarshalAssignment(s string) (Assignment, error) {
	var w assignmentJSON
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		return Assignment{}, fmt.Errorf("%w: malformed JSON: %w", errAssignment, err)
	}
	if w.V == nil {
		return Assignment{}, fmt.Errorf("%w: missing version field \"v\"", errAssignment)
	}
	if *w.V != AssignmentVersion {
		return Assignment{}, fmt.Errorf("%w: unsupported version \"v\" = %d (this build reads %d)", errAssignment, *w.V, AssignmentVersion)
	}
	a := Assignment{GPUs: w.GPUs, UUIDs: w.UUIDs}
	for _, m := range w.MIG {
		a.MIG = append(a.MIG, MIGSlot(m))
	}
	for _, sh := range w.Shares {
		a.Shares = append(a.Shares, Share(sh))
	}
	if err := a.Validate(); err != nil {
		return Assignment{}, fmt.Errorf("%w: %w", errAssignment, err)
	}
	return a.Normalize(), nil
}

// Describe says in words which devices an assignment holds, e.g.
// "GPUs 0,1,2,3", "MIG 3g.40gb on GPU 2 (start 4)" or "250m of GPU 1", for
// Events and reports that people read.
func (a Assignment) Describe() string {
	var parts []string
	if len(a.GPUs) > 0 {
		idx := make([]string, len(a.GPUs))
		for i, g := range a.GPUs {
			idx[i] = strconv.Itoa(g)
		}
		noun := "GPUs "
		if len(a.GPUs) == 1 {
			noun = "GPU "
		}
		parts = append(parts, noun+strings.Join(idx, ","))
	}
	for _, m := range a.MIG {
		parts = append(parts, fmt.Sprintf("MIG %s on GPU %d (start %d)", m.Profile, m.GPU, m.Start))
	}
	for _, s := range a.Shares {
		parts = append(parts, fmt.Sprintf("%dm of GPU %d", s.Milli, s.GPU))
	}
	if len(parts) == 0 {
		return "no GPU"
	}
	return strings.Join(parts, ", ")
}
