// Package simulated gives tessera-agent GPUs that are not there: one of
// NVIDIA's mocked DGX systems (go-nvml's pkg/nvml/mock), wired as the real
// machine is — every pair of its eight GPUs linked over NVLink (one
// NVSwitch fabric), GPUs 0-3 on NUMA node 0 and 4-7 on NUMA node 1, GPUs in
// pairs under one PCIe switch — with UUIDs derived from the node's name, so
// that they stay the same across restarts and differ between nodes.
//
// It lets playgrounds and end-to-end tests on machines without GPUs run the
// agent's whole path on real kubelets: discovery, publishing the
// NodeGPUTopology, and handing devices to containers. tessera-agent uses it
// only when started with --simulate, never by default.
package simulated

import (
	"crypto/sha1"
	"fmt"
	"sort"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/uuid"

	"github.com/tessera-sched/tessera/pkg/agent/nvmltest"
)

// systems are the machines --simulate can stand in for.
var systems = map[string]func() *server.Server{
	"dgx-a100": dgxa100.New,
	"dgx-h100": dgxh100.New,
	"dgx-h200": dgxh200.New,
	"dgx-b200": dgxb200.New,
}

// Systems lists the names New accepts, sorted.
func Systems() []string {
	names := make([]string, 0, len(systems))
	for n := range systems {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns the simulated NVML of system (one of Systems) on the node
// named node.
func New(system, node string) (nvml.Interface, error) {
	newServer, ok := systems[system]
	if !ok {
		return nil, fmt.Errorf("unknown simulated system %q (known: %s)", system, strings.Join(Systems(), ", "))
	}
	s := nvmltest.Stub(newServer())
	devices := make([]*server.Device, len(s.Devices))
	for i, d := range s.Devices {
		devices[i] = d.(*server.Device)
	}
	half := len(devices) / 2
	for i, dev := range devices {
		dev.UUID = "GPU-" + uuid.NewHash(sha1.New(), uuid.NameSpaceOID, []byte(fmt.Sprintf("tessera-simulated/%s/%s/%d", system, node, i)), 5).String()
		numa := 0
		if half > 0 && i >= half {
			numa = 1
		}
		dev.GetNumaNodeIdFunc = func() (int, nvml.Return) { return numa, nvml.SUCCESS }
		dev.GetP2PStatusFunc = func(nvml.Device, nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
			return nvml.P2P_STATUS_OK, nvml.SUCCESS
		}
		index := i
		dev.GetTopologyCommonAncestorFunc = func(peer nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			for j, other := range devices {
				if nvml.Device(other) == peer {
					if j/2 == index/2 {
						return nvml.TOPOLOGY_SINGLE, nvml.SUCCESS
					}
					if (j < half) == (index < half) {
						return nvml.TOPOLOGY_NODE, nvml.SUCCESS
					}
					return nvml.TOPOLOGY_SYSTEM, nvml.SUCCESS
				}
			}
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
	}
	return s, nil
}
