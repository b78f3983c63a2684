package gang

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestDecodeArgs(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantErr []string
	}{
		{name: "defaults", raw: ``},
		{name: "valid", raw: `{"defaultScheduleTimeoutSeconds":10,"backoffInitialSeconds":2,"backoffMaxSeconds":2}`},
		{name: "timeout zero", raw: `{"defaultScheduleTimeoutSeconds":0}`, wantErr: []string{"pluginConfig[Gang].args.defaultScheduleTimeoutSeconds", "0"}},
		{name: "max below initial", raw: `{"backoffInitialSeconds":10,"backoffMaxSeconds":5}`, wantErr: []string{"pluginConfig[Gang].args.backoffMaxSeconds", "5", "backoffInitialSeconds (10)"}},
		{name: "no back-off, as scheduler-plugins' default", raw: `{"backoffInitialSeconds":0,"backoffMaxSeconds":0}`},
		{name: "no back-off needs a zero max", raw: `{"backoffInitialSeconds":0,"backoffMaxSeconds":30}`, wantErr: []string{"pluginConfig[Gang].args.backoffMaxSeconds", "30", "must be 0"}},
		{name: "negative back-off", raw: `{"backoffInitialSeconds":-1}`, wantErr: []string{"pluginConfig[Gang].args.backoffInitialSeconds", "-1"}},
		{name: "starvation zero", raw: `{"starvationAfterSeconds":0}`, wantErr: []string{"pluginConfig[Gang].args.starvationAfterSeconds", "0"}},
		{name: "unknown field", raw: `{"timeout":5}`, wantErr: []string{`unknown field "timeout"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := DecodeArgs(&runtime.Unknown{Raw: []byte(tc.raw)})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if *a.BackoffMaxSeconds < *a.BackoffInitialSeconds {
					t.Fatalf("defaults inconsistent: %+v", a)
				}
				return
			}
			if err == nil {
				t.Fatalf("expected error, got %+v", a)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
