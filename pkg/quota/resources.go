package quota

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Resources maps a resource name to an amount in that resource's smallest
// unit: CPU in millicores, memory in bytes, devices in counts, GPU shares and
// GPU equivalents in milli. Plain integers, rather than resource.Quantity,
// keep quota arithmetic exact, cheap and free of Kubernetes dependencies; the
// framework adapter does the conversion.
//
// A nil Resources is valid and empty. The methods below never modify their
// receiver or arguments, so a value can be shared once it is built.
type Resources map[string]int64

// Clone returns an independent copy, so that callers can keep or modify the
// result without aliasing the tracker's state. Clone of nil is nil.
func (r Resources) Clone() Resources {
	return maps.Clone(r)
}

// Add returns r + other, key by key over the union of their keys. It
// allocates a new map so that neither operand is changed.
func (r Resources) Add(other Resources) Resources {
	out := make(Resources, len(r)+len(other))
	maps.Copy(out, r)
	for name, v := range other {
		out[name] += v
	}
	return out
}

// Sub returns r - other, key by key over the union of their keys. Results
// may be negative; callers that need a floor apply it themselves, because
// whether a deficit matters depends on the question being asked.
func (r Resources) Sub(other Resources) Resources {
	out := make(Resources, len(r)+len(other))
	maps.Copy(out, r)
	for name, v := range other {
		out[name] -= v
	}
	return out
}

// LessOrEqual reports whether r fits within limit. Only the keys present in
// limit constrain, and a key missing from r counts as 0. This matches how a
// quota's max is read (a resource missing from max is unlimited); a min, where
// a missing key means 0 guaranteed, must be compared per resource instead.
func (r Resources) LessOrEqual(limit Resources) bool {
	for name, l := range limit {
		if r[name] > l {
			return false
		}
	}
	return true
}

// IsZero reports whether every amount is zero, so that an empty map, a nil
// map and a map of explicit zeros all mean "nothing".
func (r Resources) IsZero() bool {
	for _, v := range r {
		if v != 0 {
			return false
		}
	}
	return true
}

// String formats r as {name=amount, ...} in sorted key order, so that log
// lines, events and test failures are stable from run to run.
func (r Resources) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range sortedNames(r) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strconv.FormatInt(r[name], 10))
	}
	b.WriteByte('}')
	return b.String()
}

// sortedNames returns the keys of r in ascending order.
func sortedNames(r Resources) []string {
	return slices.Sorted(maps.Keys(r))
}

// addInto adds src to *dst in place, creating the map if needed and dropping
// keys that reach zero so that tracked usage stays minimal.
func addInto(dst *Resources, src Resources, sign int64) {
	if len(src) == 0 {
		return
	}
	if *dst == nil {
		*dst = make(Resources, len(src))
	}
	for name, v := range src {
		n := (*dst)[name] + sign*v
		if n == 0 {
			delete(*dst, name)
			continue
		}
		(*dst)[name] = n
	}
}
