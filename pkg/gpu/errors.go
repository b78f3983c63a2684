package gpu

import (
	"fmt"
	"strconv"
)

// FitError is an error from Allocate that explains to a person why a node
// cannot host a request. Reason is a short text without node-specific
// numbers, so that a scheduler can count equal reasons over all nodes and
// report "12 nodes: lack 4 GPUs in one NVLink domain or NUMA node".
type FitError interface {
	error
	Reason() string
}

var (
	_ FitError = InsufficientGPUs{}
	_ FitError = NoLocalDomain{}
	_ FitError = NoMIGSlot{}
	_ FitError = NoShareRoom{}
	_ FitError = UnknownProfile{}
	_ FitError = InvalidRequest{}
)

// InsufficientGPUs means the node has fewer free whole GPUs (MIG disabled,
// nothing on them) than the request wants.
type InsufficientGPUs struct {
	Want, Free int
}

// Error implements error with a message for a person.
func (e InsufficientGPUs) Error() string {
	return fmt.Sprintf("want %d whole GPUs, %d free", e.Want, e.Free)
}

// Reason implements FitError.
func (e InsufficientGPUs) Reason() string {
	return "lack " + plural(e.Want, "free GPU")
}

// NoLocalDomain means enough whole GPUs are free, but not within one NVLink
// domain or one NUMA node as a LocalityRequired request demands.
type NoLocalDomain struct {
	Want int
}

// Error implements error with a message for a person.
func (e NoLocalDomain) Error() string {
	return fmt.Sprintf("no %d free GPUs in one NVLink domain or NUMA node", e.Want)
}

// Reason implements FitError.
func (e NoLocalDomain) Reason() string {
	return "lack " + plural(e.Want, "GPU") + " in one NVLink domain or NUMA node"
}

// NoMIGSlot means the node's GPUs offer the profile, but no free instance of
// it exists and none can be created (the GPUs are MIG-static, MIG-disabled or
// too full).
type NoMIGSlot struct {
	Profile string
	// Want is how many instances of Profile the request asked for.
	Want int
}

// Error implements error with a message for a person.
func (e NoMIGSlot) Error() string {
	return fmt.Sprintf("want %d MIG %s instances, not enough free or creatable", max(e.Want, 1), e.Profile)
}

// Reason implements FitError.
func (e NoMIGSlot) Reason() string {
	return "lack " + plural(max(e.Want, 1), "free MIG "+e.Profile+" slot")
}

// NoShareRoom means no MIG-disabled GPU has Milli milli-GPUs free for a
// share.
type NoShareRoom struct {
	Milli int
}

// Error implements error with a message for a person.
func (e NoShareRoom) Error() string {
	return fmt.Sprintf("no GPU has %dm free for a share", e.Milli)
}

// Reason implements FitError.
func (e NoShareRoom) Reason() string {
	return "no GPU with " + strconv.Itoa(e.Milli) + "m free"
}

// UnknownProfile means no GPU of the node offers the MIG profile: its
// products do not have it and no existing instance has that name. Usually the
// pod asks for a profile of another GPU model.
type UnknownProfile struct {
	Profile string
}

// Error implements error with a message for a person.
func (e UnknownProfile) Error() string {
	return fmt.Sprintf("MIG profile %q is not offered by any GPU on the node", e.Profile)
}

// Reason implements FitError.
func (e UnknownProfile) Reason() string {
	return "MIG profile " + e.Profile + " not offered"
}

// InvalidRequest means the request itself is malformed, so no node fits.
type InvalidRequest struct {
	Field, Value string
}

// Error implements error with a message for a person.
func (e InvalidRequest) Error() string {
	return fmt.Sprintf("invalid GPU request: %s = %s", e.Field, e.Value)
}

// Reason implements FitError.
func (e InvalidRequest) Reason() string {
	return "invalid GPU request"
}

// plural formats n and a noun, adding "s" unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
