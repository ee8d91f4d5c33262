package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// PeerView is what ranking needs to know of one peer.
type PeerView struct {
	ID           string
	Status       PeerStatus
	Capabilities Capabilities
	TaskTypes    []string
	// Present is true when this node has checked the peer is really there:
	// a direct connection authenticated with the peer's key, not only
	// heartbeats relayed by others (which any peer can forge for keys it
	// made up). Only present peers are eligible.
	Present bool
	// Origin is the peer's network origin under the replica diversity
	// rule (Diversity.Origin of the direct connection's address): a task
	// gets at most one candidate per origin.
	Origin   string
	Verified int // results of this peer that this node verified itself
	Rejected int // results of this peer that this node refuted
}

// Weight is how strongly ranking prefers a peer: 1 for a peer with no
// record, up to 2 with verified results this node observed, and falling
// with each refuted one. Self-reported load and health never count.
func (p PeerView) Weight() float64 {
	w := 1 + float64(min(p.Verified, 20))/20
	return w / float64(1+3*p.Rejected)
}

// Rank returns the ids of the eligible peers able to run a task of type
// tt, at most max, at most one per network origin, in an order that is a
// function of seed (Task.RankSeed) weighted by reputation: weighted
// rendezvous hashing, so the submitting node cannot pick whom it prefers
// beyond eligibility. ErrNoCapablePeer names why each peer was passed
// over when none is left.
func Rank(tt TaskType, seed string, peers []PeerView, max int) ([]string, error) {
	type cand struct {
		id, origin string
		score      float64
	}
	var cs []cand
	var why []string
	for _, p := range peers {
		switch {
		case p.Status != StatusOnline:
			why = append(why, fmt.Sprintf("%s is %s", ShortPeer(p.ID), p.Status))
		case !p.Present:
			why = append(why, fmt.Sprintf("%s is not directly connected (known only from gossip)", ShortPeer(p.ID)))
		case !slices.Contains(p.TaskTypes, tt.ID):
			why = append(why, fmt.Sprintf("%s does not serve %s", ShortPeer(p.ID), tt.ID))
		default:
			if err := tt.Meets(p.Capabilities); err != nil {
				why = append(why, fmt.Sprintf("%s: %v", ShortPeer(p.ID), err))
				continue
			}
			h := sha256.Sum256([]byte(seed + "/" + p.ID))
			u := (float64(binary.BigEndian.Uint64(h[:8])>>11) + 0.5) / (1 << 53) // uniform in (0,1)
			cs = append(cs, cand{p.ID, p.Origin, -math.Log(u) / p.Weight()})
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].score != cs[j].score {
			return cs[i].score < cs[j].score
		}
		return cs[i].id < cs[j].id
	})
	var ids []string
	used := map[string]string{}
	for _, c := range cs {
		if prev, dup := used[c.origin]; dup && c.origin != "" {
			why = append(why, fmt.Sprintf("%s shares network origin %s with %s", ShortPeer(c.id), c.origin, ShortPeer(prev)))
			continue
		}
		used[c.origin] = c.id
		ids = append(ids, c.id)
		if max > 0 && len(ids) == max {
			break
		}
	}
	if len(ids) == 0 {
		reason := "no peers known"
		if len(why) > 0 {
			if len(why) > 8 {
				why = append(why[:8], fmt.Sprintf("and %d more", len(why)-8))
			}
			reason = strings.Join(why, "; ")
		}
		return nil, fmt.Errorf("task type %s: %w (%s)", tt.ID, ErrNoCapablePeer, reason)
	}
	return ids, nil
}

// Diversity is a network's replica diversity rule (network.json
// "replica_diversity"): candidates of one task come from distinct network
// origins, so one host with many keys gets at most one replica.
type Diversity struct {
	// IPv4Prefix and IPv6Prefix are the prefix lengths that make one
	// origin of a public address (24 and 48 by default).
	IPv4Prefix int `json:"ipv4_prefix"`
	IPv6Prefix int `json:"ipv6_prefix"`
	// PrivateByHost, when true, makes one origin of a loopback address
	// too; when false, each loopback address and port is its own origin
	// (a testnet on one machine: only processes on the ranking node's own
	// machine reach it over loopback). Any other private or link-local
	// address is always one origin per host (per /64 for IPv6): one
	// machine on a LAN, a VPC or a container network with many keys
	// gets one replica (a review of 2026-12-07 had two keys behind one
	// private address, on two ports, settle a wrong output).
	PrivateByHost bool `json:"private_by_host,omitempty"`
}

// DefaultDiversity is the rule of the built-in network.
func DefaultDiversity() Diversity { return Diversity{IPv4Prefix: 24, IPv6Prefix: 48} }

// Validate refuses prefix lengths out of range.
func (d Diversity) Validate() error {
	if d.IPv4Prefix < 1 || d.IPv4Prefix > 32 || d.IPv6Prefix < 1 || d.IPv6Prefix > 128 {
		return fmt.Errorf("replica_diversity: ipv4_prefix %d (1..32), ipv6_prefix %d (1..128)", d.IPv4Prefix, d.IPv6Prefix)
	}
	return nil
}

// Origin is the network origin of a peer seen at addr.
func (d Diversity) Origin(addr netip.AddrPort) string {
	ip := addr.Addr().Unmap()
	bits := d.IPv6Prefix
	if ip.Is4() {
		bits = d.IPv4Prefix
	}
	switch {
	case ip.IsLoopback() && !d.PrivateByHost:
		return netip.AddrPortFrom(ip, addr.Port()).String()
	case ip.IsLoopback() || ip.Is4() && (ip.IsPrivate() || ip.IsLinkLocalUnicast()):
		return ip.String()
	case ip.IsPrivate() || ip.IsLinkLocalUnicast():
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ip.String()
	}
	return p.String()
}
