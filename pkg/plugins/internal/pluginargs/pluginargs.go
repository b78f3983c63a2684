// Package pluginargs decodes the `args` of a Tessera plugin from a
// KubeSchedulerConfiguration pluginConfig entry.
//
// Out-of-tree plugin args reach a plugin factory as *runtime.Unknown holding
// JSON (the scheduler converts YAML to JSON while loading the file). Decoding is
// strict: a misspelt field fails start-up instead of being silently ignored,
// because a typo in a scheduler config is otherwise invisible until pods land
// in the wrong place.
package pluginargs

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Path returns the field path of a plugin's args in the scheduler
// configuration, so that every validation error names the exact place a user
// has to edit: pluginConfig[Name].args.
func Path(plugin string) *field.Path {
	return field.NewPath("pluginConfig").Key(plugin).Child("args")
}

// Decode strictly decodes obj into into. A nil obj (no pluginConfig entry)
// leaves into untouched, so callers apply defaults afterwards either way.
func Decode(plugin string, obj runtime.Object, into any) error {
	if obj == nil {
		return nil
	}
	var raw []byte
	switch o := obj.(type) {
	case *runtime.Unknown:
		raw = o.Raw
	default:
		// A typed object (e.g. built by a test or the replay); round-trip it
		// through JSON so one strict code path validates every caller.
		b, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("%s: encoding args: %w", Path(plugin), err)
		}
		raw = b
	}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("%s: %w", Path(plugin), err)
	}
	return nil
}

// DecodeArgs strictly decodes obj into a new T, applies setDefaults and
// then validate: the whole path from a pluginConfig entry to a plugin's
// checked args, so that every plugin fails start-up the same way, with an
// error naming the plugin and the field.
func DecodeArgs[T any](plugin string, obj runtime.Object, setDefaults func(*T), validate func(*T) error) (*T, error) {
	a := new(T)
	if err := Decode(plugin, obj, a); err != nil {
		return nil, err
	}
	setDefaults(a)
	if err := validate(a); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", plugin, err)
	}
	return a, nil
}
