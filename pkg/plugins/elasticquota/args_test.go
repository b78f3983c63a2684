package elasticquota

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestDecodeArgs(t *testing.T) {
	a, err := DecodeArgs(nil)
	if err != nil || a.NamespacesWithoutQuota != Ungoverned || a.BorrowingLimit != UnusedMinAndUnguaranteed {
		t.Fatalf("defaults: got %+v, %v", a, err)
	}
	a, err = DecodeArgs(&runtime.Unknown{Raw: []byte(`{"namespacesWithoutQuota":"Deny"}`)})
	if err != nil || a.NamespacesWithoutQuota != Deny {
		t.Fatalf("explicit: got %+v, %v", a, err)
	}
	_, err = DecodeArgs(&runtime.Unknown{Raw: []byte(`{"namespacesWithoutQuota":"Maybe"}`)})
	if err == nil || !strings.Contains(err.Error(), "pluginConfig[ElasticQuota].args.namespacesWithoutQuota") || !strings.Contains(err.Error(), `"Maybe"`) {
		t.Fatalf("bad value: error %v does not name field and value", err)
	}
	a, err = DecodeArgs(&runtime.Unknown{Raw: []byte(`{"borrowingLimit":"UnusedMin"}`)})
	if err != nil || a.BorrowingLimit != UnusedMin {
		t.Fatalf("scheduler-plugins' borrowing limit: got %+v, %v", a, err)
	}
	_, err = DecodeArgs(&runtime.Unknown{Raw: []byte(`{"borrowingLimit":"Everything"}`)})
	if err == nil || !strings.Contains(err.Error(), "pluginConfig[ElasticQuota].args.borrowingLimit") || !strings.Contains(err.Error(), `"Everything"`) {
		t.Fatalf("bad borrowing limit: error %v does not name field and value", err)
	}
}
