package protocol

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParseProtocols feeds a peer's identify protocol list (one id a
// line) to ParseProtocols: whatever it keeps is within its bounds (at most
// maxProtocolNetworks networks, each a valid network id; majors sorted,
// distinct, 1..1000), and every major kept is named by an id of the list
// within the first maxProtocolIDs.
func FuzzParseProtocols(f *testing.F) {
	f.Add(strings.Join([]string{MarkerProtocolID("devnet", 1), "/proofmesh/devnet/kad/1.0.0", "/proofmesh/devnet/files/2.1", "/ipfs/id/1.0.0", "/meshsub/1.1.0"}, "\n"))
	f.Add("/proofmesh/a/x/01\n/proofmesh/a/x/1\n/proofmesh/A/x/1\n/proofmesh//x/1\n/proofmesh/a//1\n/proofmesh/a/x/+1\n/proofmesh/a/x/1001")
	f.Add(strings.Repeat("/proofmesh/n/blob/1\n", 300) + "/proofmesh/late/blob/2")
	f.Fuzz(func(t *testing.T, list string) {
		ids := strings.Split(list, "\n")
		pp := ParseProtocols(ids)
		if len(pp.Majors) > maxProtocolNetworks {
			t.Fatalf("%d networks kept, at most %d", len(pp.Majors), maxProtocolNetworks)
		}
		looked := ids[:min(len(ids), maxProtocolIDs)]
		for net, majors := range pp.Majors {
			if !validNetworkID(net) {
				t.Fatalf("network id %q kept", net)
			}
			if !slices.IsSorted(majors) || len(slices.Compact(slices.Clone(majors))) != len(majors) {
				t.Fatalf("network %s: majors %v not sorted and distinct", net, majors)
			}
			for _, m := range majors {
				if m < 1 || m > 1000 {
					t.Fatalf("network %s: major %d out of range", net, m)
				}
				named := slices.ContainsFunc(looked, func(id string) bool {
					parts := strings.Split(id, "/")
					if len(parts) != 5 || parts[2] != net || parts[3] == "kad" {
						return false
					}
					lead, _, _ := strings.Cut(parts[4], ".")
					return lead == MarkerProtocolID(net, m)[len("/proofmesh/"+net+"/blob/"):]
				})
				if !named {
					t.Fatalf("network %s: major %d kept, no id of the list names it", net, m)
				}
			}
			if c := pp.Classify(net, majors0(majors)); len(majors) > 0 && c != Compatible {
				t.Fatalf("network %s: serving major %d but classified %v", net, majors[0], c)
			}
		}
	})
}

func majors0(ms []int) int {
	if len(ms) == 0 {
		return 0
	}
	return ms[0]
}
