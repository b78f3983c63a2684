package plugins

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tessera-sched/tessera/pkg/plugins/elasticquota"
	"github.com/tessera-sched/tessera/pkg/plugins/gang"
	"github.com/tessera-sched/tessera/pkg/plugins/gpuplacement"
)

// FuzzPluginArgs feeds every plugin's args decoder what a scheduler
// configuration file could hold: decoding never panics, and a refusal names
// the plugin's place in the configuration (pluginConfig[Name].args), so a
// bad file fails start-up with an error a person can act on.
func FuzzPluginArgs(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, ``, `[]`, `{"unknown":1}`,
		`{"fragmentationWeight":-1}`, `{"scoringStrategy":"Spread"}`,
		`{"defaultTimeoutSeconds":0}`, `{"defaultTimeoutSeconds":"10"}`,
		`{"reclaim":true}`, `{"gpuWeight":1e309}`, `{"a":{"b":[1,2,{"c":null}]}}`,
	} {
		f.Add(seed)
	}
	decoders := map[string]func(runtime.Object) error{
		elasticquota.Name: func(o runtime.Object) error { _, err := elasticquota.DecodeArgs(o); return err },
		gang.Name:         func(o runtime.Object) error { _, err := gang.DecodeArgs(o); return err },
		gpuplacement.Name: func(o runtime.Object) error { _, err := gpuplacement.DecodeArgs(o); return err },
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for name, decode := range decoders {
			err := decode(&runtime.Unknown{Raw: []byte(raw)})
			if err != nil && !strings.Contains(err.Error(), name) {
				t.Errorf("%s refused %q with %q, which does not name the plugin", name, raw, err)
			}
		}
	})
}
