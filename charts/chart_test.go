package charts

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/manifests/render"
)

var update = flag.Bool("update", false, "rewrite charts/tessera/crds from manifests/crds")

const (
	chartDir  = "tessera"
	namespace = "tessera-system"
	crdsFile  = "tessera/crds/crds.yaml"
)

// render renders the chart as `helm template -n tessera-system` would,
// with values overriding values.yaml, and returns the objects.
func renderChart(t *testing.T, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	out, err := renderChartErr(values)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func renderChartErr(values map[string]any) ([]*unstructured.Unstructured, error) {
	chrt, err := loader.LoadDir(chartDir)
	if err != nil {
		return nil, err
	}
	vals, err := util.ToRenderValues(chrt, values, common.ReleaseOptions{Name: "tessera", Namespace: namespace, IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, name := range sortedKeys(files) {
		if strings.HasSuffix(name, ".yaml") {
			fmt.Fprintf(&buf, "---\n%s\n", files[name])
		}
	}
	return decode(buf.Bytes())
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func decode(data []byte) ([]*unstructured.Unstructured, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := d.Decode(&obj); err != nil {
			if err.Error() == "EOF" {
				return out, nil
			}
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	data, err := render.Kustomization(dir, render.Overlay{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

var hashSuffix = regexp.MustCompile(`^(tessera-scheduler-config)-[a-z0-9]{10}$`)

// normalize keys objects by kind/namespace/name and takes out what differs
// by design: kustomize's hashed ConfigMap name (Helm rolls the Deployment
// with a checksum annotation instead), the scheduler configuration's
// comments (compared as parsed YAML), the Namespace (Helm's
// --create-namespace makes it) and the CRDs (crds/, compared apart).
func normalize(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			continue
		}
		o = o.DeepCopy()
		if m := hashSuffix.FindStringSubmatch(o.GetName()); m != nil {
			o.SetName(m[1])
		}
		switch o.GetKind() {
		case "ConfigMap":
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for k, v := range data {
				var parsed any
				if err := yaml.Unmarshal([]byte(v), &parsed); err != nil {
					t.Fatalf("ConfigMap %s key %s: %v", o.GetName(), k, err)
				}
				o.Object["data"].(map[string]any)[k] = parsed
			}
		case "Deployment":
			unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			if a, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "metadata", "annotations"); len(a) == 0 {
				unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations")
			}
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			for _, v := range vols {
				if cm, ok := v.(map[string]any)["configMap"].(map[string]any); ok {
					if m := hashSuffix.FindStringSubmatch(fmt.Sprint(cm["name"])); m != nil {
						cm["name"] = m[1]
					}
				}
			}
			_ = unstructured.SetNestedSlice(o.Object, vols, "spec", "template", "spec", "volumes")
		}
		out[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o.Object
	}
	return out
}

// TestChartEqualsKustomize renders the chart with the values of each
// install mode and compares the objects with the kustomize bases of that
// mode, object by object.
func TestChartEqualsKustomize(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		bases  []string
	}{
		{"secondary scheduler", map[string]any{"agent": map[string]any{"enabled": false}}, []string{"base"}},
		{"default scheduler", map[string]any{"mode": "default-scheduler", "agent": map[string]any{"enabled": false}}, []string{"default-scheduler"}},
		{"with the agent (the default)", nil, []string{"base", "agent"}},
		{"with the agent as device plugin", map[string]any{"agent": map[string]any{"devicePlugin": true}}, []string{"base", "agent-device-plugin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []*unstructured.Unstructured
			for _, b := range tt.bases {
				want = append(want, kustomize(t, b)...)
			}
			got := normalize(t, renderChart(t, tt.values))
			wantN := normalize(t, want)
			for key := range wantN {
				if _, ok := got[key]; !ok {
					t.Errorf("the chart lacks %s", key)
				}
			}
			for key := range got {
				if _, ok := wantN[key]; !ok {
					t.Errorf("the chart renders %s, which manifests/%s do not have", key, strings.Join(tt.bases, " + "))
				}
			}
			for key, w := range wantN {
				if g, ok := got[key]; ok {
					if diff := cmp.Diff(w, g); diff != "" {
						t.Errorf("%s differs (-kustomize +chart):\n%s", key, diff)
					}
				}
			}
		})
	}
}

// TestChartCRDs: the chart's crds/ holds exactly what manifests/crds
// renders (the generated CRDs with their validation patch). `make
// manifests` rewrites it (go test ./charts -run TestChartCRDs -update).
func TestChartCRDs(t *testing.T) {
	want, err := render.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want = append([]byte("# Generated from manifests/crds by `make manifests`; do not edit.\n"), want...)
	if *update {
		if err := os.WriteFile(crdsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(crdsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what manifests/crds renders; run make manifests", crdsFile)
	}
	chrt, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range chrt.CRDObjects() {
		objs, err := decode(c.File.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			names = append(names, o.GetName())
		}
	}
	sort.Strings(names)
	if w := []string{"elasticquotas.scheduling.x-k8s.io", "nodegputopologies.tessera.dev", "podgroups.scheduling.x-k8s.io"}; !cmp.Equal(names, w) {
		t.Errorf("the chart installs CRDs %v, want %v", names, w)
	}
}

// TestChartLint runs Helm's linter (as `helm lint --strict` would) for
// each install mode.
func TestChartLint(t *testing.T) {
	kv, err := common.ParseKubeVersion("v1.37.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, values := range []map[string]any{
		nil,
		{"mode": "default-scheduler"},
		{"agent": map[string]any{"devicePlugin": true, "migLayout": "dynamic"}},
	} {
		res := lint.RunAll(chartDir, values, namespace, lint.WithKubeVersion(kv))
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("values %v: %v", values, m)
			}
		}
	}
}

// TestChartRefusesBadValues: a wrong value fails the install with a
// message naming it, before anything reaches the cluster.
func TestChartRefusesBadValues(t *testing.T) {
	tests := []struct {
		values map[string]any
		want   string
	}{
		{map[string]any{"mode": "primary"}, "mode"},
		{map[string]any{"agent": map[string]any{"migLayout": "dynamic"}}, `agent.migLayout: "dynamic" needs agent.devicePlugin: true`},
		{map[string]any{"scheduler": map[string]any{"replicas": 0}}, "replicas"},
		{map[string]any{"pluginArgs": map[string]any{"GPUPlacment": map[string]any{}}}, "GPUPlacment"},
	}
	for _, tt := range tests {
		_, err := renderChartErr(tt.values)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("values %v: error %v, want one naming %q", tt.values, err, tt.want)
		}
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); err != nil {
		fmt.Fprintln(os.Stderr, "run from charts/:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
