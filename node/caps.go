package node

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/proofmesh/proofmesh/protocol"
)

// Declared are the capabilities an operator declares; zero values of
// CPUCores and MemoryGB mean "what the machine has".
type Declared struct {
	CPUCores      int
	MemoryGB      int
	GPU           bool
	BandwidthMbps int
	NodeType      string
	Region        string
}

// DetectMemoryGB returns the machine's memory in GiB (at least 1), read
// from /proc/meminfo; 1 where that is unavailable.
func DetectMemoryGB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 1
			}
			return max(1, int(kb>>20))
		}
	}
	return 1
}

// Capabilities turns declared values (with detected defaults) into the
// capability set a node announces.
func (d Declared) Capabilities() protocol.Capabilities {
	c := protocol.Capabilities{}
	cores := d.CPUCores
	if cores == 0 {
		cores = runtime.NumCPU()
	}
	mem := d.MemoryGB
	if mem == 0 {
		mem = DetectMemoryGB()
	}
	c[protocol.CapCPUCores] = int64(cores)
	c[protocol.CapMemoryGB] = int64(mem)
	c[protocol.CapGPUAvailable] = d.GPU
	if d.BandwidthMbps != 0 {
		c[protocol.CapBandwidthMbps] = int64(d.BandwidthMbps)
	}
	nt := d.NodeType
	if nt == "" {
		nt = protocol.NodeTypeCompute
	}
	c[protocol.CapNodeType] = nt
	if d.Region != "" {
		c[protocol.CapRegion] = d.Region
	}
	return c
}
