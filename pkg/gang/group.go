package gang

import (
	"maps"
	"strings"
	"time"
)

// GroupKey identifies a pod group as "namespace/name", the form Kubernetes
// uses for namespaced object keys, so that reasons, logs and metric labels
// can print it unchanged. A pod group only gathers pods of its own
// namespace, as with scheduler-plugins' pod-group label.
type GroupKey string

// NewGroupKey returns the key of the pod group called name in namespace.
func NewGroupKey(namespace, name string) GroupKey {
	return GroupKey(namespace + "/" + name)
}

// Namespace returns the namespace part of k, "" if k has no slash.
func (k GroupKey) Namespace() string {
	ns, _, ok := strings.Cut(string(k), "/")
	if !ok {
		return ""
	}
	return ns
}

// Name returns the name part of k, all of k if it has no slash.
func (k GroupKey) Name() string {
	_, name, ok := strings.Cut(string(k), "/")
	if !ok {
		return string(k)
	}
	return name
}

// String returns k as "namespace/name".
func (k GroupKey) String() string { return string(k) }

// Topology asks that the members of a group share a topology domain, such
// as a rack or an NVLink/InfiniBand island, named by a node label. Collective
// communication across domains is much slower than within one, so a
// distributed training job may rather wait than be spread.
type Topology struct {
	// Key is the node label whose value all members' nodes must share; ""
	// places members anywhere.
	Key string
	// Required makes the domain a hard constraint: the group is placed in a
	// single domain or not at all. When false the domain is preferred: a
	// single domain is tried first and the whole cluster after.
	Required bool
}

// Group is the scheduling-relevant part of a PodGroup object. The adapter
// converts the API object into a Group and hands it to Manager.SetGroup.
type Group struct {
	// Key is the group's namespace/name.
	Key GroupKey
	// MinMember is how many members must have a place before any is bound.
	// Values below 1 count as 1, the API's minimum. A group of one needs
	// no assembly: it is scheduled like a plain pod once it exists.
	MinMember int
	// Timeout bounds how long the group may hold reservations while it
	// assembles, 0 meaning Config.DefaultTimeout. Short, because members
	// waiting at Permit hold devices that others could use.
	Timeout time.Duration
	// Priority orders groups in the queue (see Manager.Less). The PodGroup
	// API has no priority of its own, so the adapter derives it from the
	// members' pod priority (members of one job share a PriorityClass).
	// Using the group's value for every member keeps a group contiguous in
	// the queue even when its members disagree.
	Priority int32
	// Created is the PodGroup's creation time. Among equal priorities the
	// older group is scheduled first, which is what rules out starvation
	// between equal-priority groups.
	Created time.Time
	// MinResources, optional, is the total the whole group needs, by
	// resource name, as in PodGroup.spec.minResources; see
	// CheckMinResources. Nil means unchecked.
	MinResources map[string]int64
	// Topology, optional, keeps all members in one topology domain; it is
	// honoured by FitsAll.
	Topology Topology
}

// minMember returns g.MinMember with the API's minimum of 1 applied.
func (g *Group) minMember() int {
	return max(g.MinMember, 1)
}

// clone returns a copy of g that shares no map with it.
func (g Group) clone() Group {
	g.MinResources = maps.Clone(g.MinResources)
	return g
}

// Config holds the Manager's tunables. They come from the plugin's args
// (defaultScheduleTimeoutSeconds, backoffInitialSeconds, backoffMaxSeconds).
type Config struct {
	// DefaultTimeout bounds the assembly of a group that sets no Timeout.
	DefaultTimeout time.Duration
	// BackoffInitial is the back-off after a group's first failed assembly;
	// it doubles with every further consecutive failure ...
	BackoffInitial time.Duration
	// BackoffMax ... up to this cap, so that a hopeless group retries
	// regularly without storming the queue.
	BackoffMax time.Duration
	// NoBackoff turns the group back-off off (scheduler-plugins'
	// podGroupBackoffSeconds: 0): a group that failed may assemble again at
	// once, its members spaced only by the scheduler's per-pod back-off.
	// BackoffInitial and BackoffMax are then ignored.
	NoBackoff bool
	// StarvationAfter is how long a group may wait for room (its assembly
	// deferred because the cluster is busy, see Defer) before younger and
	// lower-priority groups stop starting their assemblies, so that the
	// room running work gives back accumulates for it instead of going to
	// a stream of smaller groups.
	StarvationAfter time.Duration
}

// DefaultConfig returns the defaults of the plugin's args: a 30s assembly
// timeout, a back-off doubling from 1s to at most 60s, and starvation
// protection after a minute of waiting for room.
func DefaultConfig() Config {
	return Config{DefaultTimeout: 30 * time.Second, BackoffInitial: time.Second, BackoffMax: time.Minute, StarvationAfter: time.Minute}
}

// withDefaults replaces each non-positive field of c by its default, and
// raises BackoffMax to BackoffInitial if it is below it, so that a partly
// filled Config still behaves sensibly.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = d.DefaultTimeout
	}
	if c.BackoffInitial <= 0 {
		c.BackoffInitial = d.BackoffInitial
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = d.BackoffMax
	}
	if c.StarvationAfter <= 0 {
		c.StarvationAfter = d.StarvationAfter
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffInitial)
	return c
}

// Backoff returns how long a group waits after its failures-th consecutive
// failed assembly: BackoffInitial * 2^(failures-1), capped at BackoffMax,
// and 0 for no failure or with NoBackoff. Exponential growth keeps a group that cannot fit
// from costing a scheduling cycle every second; the cap bounds how late it
// notices that capacity has become free.
func (c Config) Backoff(failures int) time.Duration {
	if failures <= 0 || c.NoBackoff {
		return 0
	}
	c = c.withDefaults()
	d := c.BackoffInitial
	for i := 1; i < failures && d < c.BackoffMax; i++ {
		d *= 2
	}
	return min(d, c.BackoffMax)
}

// timeout returns the assembly timeout of g under c.
func (c Config) timeout(g *Group) time.Duration {
	if g.Timeout > 0 {
		return g.Timeout
	}
	return c.DefaultTimeout
}
