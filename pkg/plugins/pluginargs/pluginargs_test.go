package pluginargs

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

type testArgs struct {
	Mode  string `json:"mode,omitempty"`
	Limit *int32 `json:"limit,omitempty"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		obj     runtime.Object
		want    testArgs
		wantErr string
	}{
		{name: "nil keeps zero value", obj: nil},
		{name: "empty raw", obj: &runtime.Unknown{Raw: []byte("  ")}},
		{name: "null raw", obj: &runtime.Unknown{Raw: []byte("null")}},
		{name: "fields decoded", obj: &runtime.Unknown{Raw: []byte(`{"mode":"x","limit":3}`)}, want: testArgs{Mode: "x", Limit: ptr(3)}},
		{name: "unknown field rejected", obj: &runtime.Unknown{Raw: []byte(`{"mdoe":"x"}`)}, wantErr: `pluginConfig[P].args: json: unknown field "mdoe"`},
		{name: "wrong type rejected", obj: &runtime.Unknown{Raw: []byte(`{"limit":"many"}`)}, wantErr: `pluginConfig[P].args: json: cannot unmarshal string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got testArgs
			err := Decode("P", tc.obj, &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Mode != tc.want.Mode || (got.Limit == nil) != (tc.want.Limit == nil) || (got.Limit != nil && *got.Limit != *tc.want.Limit) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func ptr(i int32) *int32 { return &i }
