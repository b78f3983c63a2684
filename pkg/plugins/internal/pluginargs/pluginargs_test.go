package pluginargs

import (
	"fmt"
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

func TestDecodeArgs(t *testing.T) {
	defaults := func(a *testArgs) {
		if a.Limit == nil {
			a.Limit = ptr(10)
		}
	}
	validate := func(a *testArgs) error {
		if *a.Limit < 0 {
			return fmt.Errorf("%s: must not be negative", Path("P").Child("limit"))
		}
		return nil
	}
	got, err := DecodeArgs("P", nil, defaults, validate)
	if err != nil || *got.Limit != 10 {
		t.Fatalf("no args: %+v, %v; want the default limit 10", got, err)
	}
	got, err = DecodeArgs("P", &runtime.Unknown{Raw: []byte(`{"limit":3}`)}, defaults, validate)
	if err != nil || *got.Limit != 3 {
		t.Fatalf("limit 3: %+v, %v", got, err)
	}
	if _, err := DecodeArgs("P", &runtime.Unknown{Raw: []byte(`{"limit":-1}`)}, defaults, validate); err == nil ||
		!strings.Contains(err.Error(), "invalid P args: pluginConfig[P].args.limit: must not be negative") {
		t.Errorf("invalid limit: error %v", err)
	}
	if _, err := DecodeArgs("P", &runtime.Unknown{Raw: []byte(`{"limt":1}`)}, defaults, validate); err == nil || !strings.Contains(err.Error(), `unknown field "limt"`) {
		t.Errorf("misspelt field: error %v", err)
	}
}
