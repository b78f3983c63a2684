package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"
)

// execute runs the command with args and d, returning stdout and the error.
func execute(t *testing.T, d deps, args ...string) (string, error) {
	t.Helper()
	cmd := newCommand(d)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// noCluster fails the test if the command contacts the API server.
func noCluster(t *testing.T) func(string) (dynamic.Interface, error) {
	return func(string) (dynamic.Interface, error) {
		t.Errorf("the command contacted the cluster")
		return nil, errors.New("no cluster in this test")
	}
}

// TestHelp checks that --help explains every flag and documents the
// --print output format that scripts rely on.
func TestHelp(t *testing.T) {
	out, err := execute(t, deps{}, "--help")
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{
		"--print", "--once", "--node-name", "--kubeconfig", "--interval", "--mig-layout", "--wait-for-driver",
		"--host-root", "--nvml-library", "NODE_NAME", "--print output (stable",
		"--simulate-mig", "--device-plugin", "the agent creates them as pods are admitted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

// TestFlagValidation checks that bad flag combinations fail before NVML or
// the cluster is touched.
func TestFlagValidation(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		args    []string
		wantErr string
	}{
		{name: "unknown MIG layout", args: []string{"--print", "--mig-layout=auto"}, wantErr: "--mig-layout"},
		{name: "zero interval", env: "n1", args: []string{"--interval=0s"}, wantErr: "--interval must be positive"},
		{name: "print and once", args: []string{"--print", "--once"}, wantErr: "exclude each other"},
		{name: "publishing needs a node name", args: []string{"--once"}, wantErr: "NODE_NAME"},
		{name: "positional arguments", args: []string{"print"}, wantErr: "unknown command"},
		{name: "unknown device list strategy", env: "n1", args: []string{"--device-plugin", "--device-list-strategy=volume-mounts"}, wantErr: `--device-list-strategy: invalid value "volume-mounts"`},
		{name: "simulated MIG without simulation", env: "n1", args: []string{"--simulate-mig=7"}, wantErr: "--simulate-mig needs --simulate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", tc.env)
			d := deps{
				newNVML: func(string) nvml.Interface {
					t.Errorf("NVML was loaded")
					return dgxh100.New()
				},
				newClient: noCluster(t),
			}
			_, err := execute(t, d, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestNVMLLoadError checks that NVML failures at start-up are explained in
// words, always with the question that points at the usual cause.
func TestNVMLLoadError(t *testing.T) {
	tests := []struct {
		ret  nvml.Return
		want string
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, "libnvidia-ml.so.1 was not found"},
		{nvml.ERROR_DRIVER_NOT_LOADED, "kernel driver is not loaded"},
		{nvml.ERROR_LIB_RM_VERSION_MISMATCH, "does not match the loaded kernel driver"},
		{nvml.ERROR_NO_PERMISSION, "no permission"},
		{nvml.ERROR_UNKNOWN, "nvmlInit failed"},
	}
	for _, tc := range tests {
		msg := nvmlLoadError(tc.ret).Error()
		for _, want := range []string{"NVML could not be loaded: ", tc.want, "Is the NVIDIA driver installed and is this a GPU node?"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%v: message %q does not contain %q", tc.ret, msg, want)
			}
		}
	}
}

// TestNoDriver runs --print against the real NVML library: on a machine
// without the NVIDIA driver (like CI) it must fail with the plain
// explanation rather than crash.
func TestNoDriver(t *testing.T) {
	if nvml.New().Init() == nvml.SUCCESS {
		t.Skip("NVML loads on this machine")
	}
	out, err := execute(t, deps{newNVML: defaultDeps().newNVML, newClient: noCluster(t), hostname: func() (string, error) { return "node", nil }, now: time.Now}, "--print")
	if err == nil || !strings.Contains(err.Error(), "NVML could not be loaded") || !strings.Contains(err.Error(), "Is the NVIDIA driver installed and is this a GPU node?") {
		t.Errorf("error %v, want the NVML explanation", err)
	}
	if out != "" {
		t.Errorf("printed %q without GPUs", out)
	}
}

// TestWaitForDriver checks --wait-for-driver's retry loop: it retries a
// failing nvmlInit with backoff until it succeeds, and gives up when the
// context ends.
func TestWaitForDriver(t *testing.T) {
	defer func(lo, hi time.Duration) { driverRetryMin, driverRetryMax = lo, hi }(driverRetryMin, driverRetryMax)
	driverRetryMin, driverRetryMax = time.Millisecond, 2*time.Millisecond

	tests := []struct {
		name     string
		failures int
		wait     bool
		timeout  time.Duration
		wantErr  string
		wantInit int
	}{
		{name: "loads at once", wantInit: 1},
		{name: "without waiting, the first failure is final", failures: 3, wantErr: "kernel driver is not loaded", wantInit: 1},
		{name: "waits until the driver loads", failures: 3, wait: true, wantInit: 4},
		{name: "gives up when stopped", failures: 1 << 30, wait: true, timeout: 20 * time.Millisecond, wantErr: "gave up waiting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib := dgxh100.New()
			inits := 0
			lib.InitFunc = func() nvml.Return {
				inits++
				if inits <= tc.failures {
					return nvml.ERROR_DRIVER_NOT_LOADED
				}
				return nvml.SUCCESS
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			err := initNVML(ctx, klog.Background(), lib, tc.wait)
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			if tc.wantInit > 0 && inits != tc.wantInit {
				t.Errorf("nvmlInit called %d times, want %d", inits, tc.wantInit)
			}
		})
	}
}
