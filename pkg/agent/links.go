package agent

import (
	"fmt"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// groups is a union-find over positions 0..n-1 of the discovered GPUs, used
// to turn "these two GPUs are linked" answers into connected components.
type groups []int

func newGroups(n int) groups {
	g := make(groups, n)
	for i := range g {
		g[i] = i
	}
	return g
}

func (g groups) find(i int) int {
	for g[i] != i {
		g[i] = g[g[i]]
		i = g[i]
	}
	return i
}

func (g groups) union(i, j int) {
	ri, rj := g.find(i), g.find(j)
	if ri != rj {
		g[rj] = ri
	}
}

// names names every component of more than one GPU prefix+"<n>", n being the
// NVML index of its lowest-indexed member, so that a name does not change
// when an unrelated GPU disappears; GPUs alone in their component get "".
func (g groups) names(devs []device, prefix string) []string {
	size := map[int]int{}
	lowest := map[int]int{}
	for i := range devs {
		r := g.find(i)
		size[r]++
		if l, ok := lowest[r]; !ok || devs[i].index < l {
			lowest[r] = devs[i].index
		}
	}
	out := make([]string, len(devs))
	for i := range devs {
		if r := g.find(i); size[r] > 1 {
			out[i] = prefix + strconv.Itoa(lowest[r])
		}
	}
	return out
}

// nvlinkDomains names the NVLink domain of each GPU.
//
// A GPU whose driver reports a completed GPU fabric registration with a
// cluster UUID (NVLink multi-node systems such as GB200 NVL72, where the
// fabric manager assigns cliques) is in domain "clique-<cluster>-<clique>":
// the clique is exactly the set of GPUs that can talk over NVLink, even
// across nodes. For the other GPUs, the domains are the connected components
// of the pairs whose NVLink peer-to-peer status is OK, named "nvlink-<n>"
// after the lowest GPU index in them; on an HGX board with NVSwitches that
// is all eight GPUs, on NVL cards the bridged pairs. GPUs without NVLink
// peers get "": PCIe only.
func nvlinkDomains(logger klog.Logger, lib nvml.Interface, devs []device) []string {
	out := make([]string, len(devs))
	var rest []int
	for i, d := range devs {
		if c := fabricClique(logger, lib, d); c != "" {
			out[i] = c
			continue
		}
		rest = append(rest, i)
	}
	sub := make([]device, len(rest))
	for k, i := range rest {
		sub[k] = devs[i]
	}
	g := newGroups(len(sub))
	for a := range sub {
		for b := a + 1; b < len(sub); b++ {
			status, ret := sub[a].handle.GetP2PStatus(sub[b].handle, nvml.P2P_CAPS_INDEX_NVLINK)
			switch {
			case ret == nvml.SUCCESS && status == nvml.P2P_STATUS_OK:
				g.union(a, b)
			case ret == nvml.SUCCESS, unsupported(ret):
			default:
				logger.Info("NVML could not tell whether two GPUs are linked by NVLink; assuming not", "gpu", sub[a].index, "peer", sub[b].index, "err", ret)
			}
		}
	}
	for k, name := range g.names(sub, "nvlink-") {
		out[rest[k]] = name
	}
	return out
}

// fabricClique returns the GPU's fabric clique name, or "" if the driver
// reports none. nvmlDeviceGetGpuFabricInfoV (R550+) is preferred; the older
// nvmlDeviceGetGpuFabricInfo answers the same question on R525-R545.
func fabricClique(logger klog.Logger, lib nvml.Interface, d device) string {
	var (
		state       uint8
		status      uint32
		clusterUUID [16]uint8
		clique      uint32
		ret         = nvml.ERROR_FUNCTION_NOT_FOUND
	)
	switch {
	case hasSymbol(lib, symbolFabricInfoV):
		var info nvml.GpuFabricInfo_v2
		info, ret = d.handle.GetGpuFabricInfoV().V2()
		state, status, clusterUUID, clique = info.State, info.Status, info.ClusterUuid, info.CliqueId
	case hasSymbol(lib, symbolFabricInfo):
		var info nvml.GpuFabricInfo
		info, ret = d.handle.GetGpuFabricInfo()
		state, status, clusterUUID, clique = info.State, info.Status, info.ClusterUuid, info.CliqueId
	}
	switch {
	case ret == nvml.SUCCESS:
	case unsupported(ret):
		return ""
	default:
		logger.V(2).Info("NVML could not read the GPU fabric state", "gpu", d.index, "err", ret)
		return ""
	}
	if state != nvml.GPU_FABRIC_STATE_COMPLETED || nvml.Return(status) != nvml.SUCCESS || clusterUUID == ([16]uint8{}) {
		return ""
	}
	u := clusterUUID
	return fmt.Sprintf("clique-%x-%x-%x-%x-%x-%d", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16], clique)
}

// pcieSwitches names the PCIe switch of each GPU: GPUs whose closest common
// ancestor in the PCIe tree is one switch (TOPOLOGY_SINGLE), a chain of
// switches without the host bridge (TOPOLOGY_MULTIPLE) or the same board
// (TOPOLOGY_INTERNAL) are grouped, and each group of two or more GPUs is
// named "pcie-<n>" after its lowest GPU index. A GPU that shares no switch
// with another gets "", since NVML cannot tell a lone switch from a root
// port and the distinction does not matter for placement.
func pcieSwitches(logger klog.Logger, devs []device) []string {
	g := newGroups(len(devs))
	for a := range devs {
		for b := a + 1; b < len(devs); b++ {
			level, ret := devs[a].handle.GetTopologyCommonAncestor(devs[b].handle)
			switch {
			case ret == nvml.SUCCESS && level <= nvml.TOPOLOGY_MULTIPLE:
				g.union(a, b)
			case ret == nvml.SUCCESS, unsupported(ret):
			default:
				logger.V(2).Info("NVML could not tell the PCIe path between two GPUs", "gpu", devs[a].index, "peer", devs[b].index, "err", ret)
			}
		}
	}
	return g.names(devs, "pcie-")
}
