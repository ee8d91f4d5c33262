package protocol

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ProtocolMajor is the wire protocol's major version: the last element of
// every topic and stream protocol name (/proofmesh/<net>/heartbeat/1,
// /proofmesh/<net>/blob/1). Within a major, a newer release may add
// optional fields that older nodes ignore; anything an older node would
// misread needs a new major (docs/PROTOCOL.md).
const ProtocolMajor = 1

// ValidVersion reports whether s can be a release string in a heartbeat:
// 1-64 of [A-Za-z0-9._+/-] (what `git describe --tags --always --dirty`
// prints, such as "v0.4.0-3-g1a2b3c4-dirty").
func ValidVersion(s string) bool { return tokenOf(s, 64, isVersionChar) }

// MarkerProtocolID is the stream protocol every node of network net and
// protocol major serves (the blob protocol), by which peers recognise it
// in identify's protocol list.
func MarkerProtocolID(net string, major int) string {
	return "/proofmesh/" + net + "/blob/" + strconv.Itoa(major)
}

// PeerProtocols is what a peer's identify protocol list says about the
// proofmesh networks and majors it speaks.
type PeerProtocols struct {
	// Majors lists, per network id, the protocol majors the peer serves.
	Majors map[string][]int
}

// Bounds on what is read from a peer's protocol list.
const (
	maxProtocolIDs      = 256
	maxProtocolNetworks = 8
)

// ParseProtocols reads the proofmesh networks and majors out of a peer's
// identify protocol list: every id /proofmesh/<net>/<name>/<version> names
// a network, and its version's leading number is the protocol major
// (/proofmesh/devnet/blob/1, a later /proofmesh/devnet/files/2.1), except
// the DHT's (/proofmesh/<net>/kad/1.0.0: kad's own version), which only
// names the network. Other protocols are skipped; at most maxProtocolIDs
// ids are looked at and maxProtocolNetworks networks kept, so a peer
// cannot make us hold much.
func ParseProtocols(ids []string) PeerProtocols {
	pp := PeerProtocols{Majors: map[string][]int{}}
	for i, id := range ids {
		if i == maxProtocolIDs {
			break
		}
		parts := strings.Split(id, "/")
		// "", "proofmesh", net, name, version
		if len(parts) != 5 || parts[0] != "" || parts[1] != "proofmesh" || parts[3] == "" || !validNetworkID(parts[2]) {
			continue
		}
		net := parts[2]
		major := 0
		if parts[3] != "kad" {
			lead, _, _ := strings.Cut(parts[4], ".")
			m, err := strconv.Atoi(lead)
			if err != nil || m < 1 || m > 1000 || lead != strconv.Itoa(m) {
				continue
			}
			major = m
		}
		if _, ok := pp.Majors[net]; !ok {
			if len(pp.Majors) == maxProtocolNetworks {
				continue
			}
			pp.Majors[net] = nil
		}
		if major > 0 && !slices.Contains(pp.Majors[net], major) {
			pp.Majors[net] = append(pp.Majors[net], major)
			slices.Sort(pp.Majors[net])
		}
	}
	return pp
}

// validNetworkID is 1-32 of [a-z0-9-] (mesh.ValidNetworkID's rule).
func validNetworkID(id string) bool { return tokenOf(id, 32, isRegionChar) }

// Compatibility is how a peer's protocols relate to ours.
type Compatibility int

// Compatibilities.
const (
	// NotProofmesh: the peer serves no proofmesh protocol at all (not yet
	// identified, or another libp2p application).
	NotProofmesh Compatibility = iota
	// Compatible: the peer serves our network at our major.
	Compatible
	// OtherMajor: the peer serves our network, but only at other majors.
	OtherMajor
	// OtherNetwork: the peer serves proofmesh, but not our network.
	OtherNetwork
)

// Classify judges a peer's protocols against our network and major. A
// peer that shows our network only through the DHT tells no major and is
// not judged.
func (pp PeerProtocols) Classify(net string, major int) Compatibility {
	switch ours, ok := pp.Majors[net]; {
	case ok && slices.Contains(ours, major):
		return Compatible
	case ok && len(ours) > 0:
		return OtherMajor
	case ok:
		return NotProofmesh
	case len(pp.Majors) > 0:
		return OtherNetwork
	}
	return NotProofmesh
}

// Networks returns the network ids the peer serves, sorted.
func (pp PeerProtocols) Networks() []string {
	out := make([]string, 0, len(pp.Majors))
	for n := range pp.Majors {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Describe is the peer's protocols for people: "devnet v1,v2; othernet v1".
func (pp PeerProtocols) Describe() string {
	var parts []string
	for _, n := range pp.Networks() {
		vs := make([]string, len(pp.Majors[n]))
		for i, m := range pp.Majors[n] {
			vs[i] = fmt.Sprintf("v%d", m)
		}
		if len(vs) == 0 {
			vs = []string{"v?"}
		}
		parts = append(parts, n+" "+strings.Join(vs, ","))
	}
	return strings.Join(parts, "; ")
}
