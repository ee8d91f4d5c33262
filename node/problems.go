package node

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/protocol"
)

// problems is what keeps this node from joining or working well, as GET
// /api/v1/node shows it; one goroutine (problemLoop) updates it.
type problems struct {
	mu  sync.Mutex
	set protocol.Problems
}

// Problems returns the node's current problems, sorted by code; never nil.
func (n *Node) Problems() []protocol.Problem {
	n.problems.mu.Lock()
	defer n.problems.mu.Unlock()
	return n.problems.set.List()
}

// problemLoop looks every ProblemInterval for what keeps the node from
// joining (another network or protocol major, unreachable bootstrap
// peers, nobody found, a clock that is off) and logs each problem at warn
// level once, when it appears, and at info level when it is resolved.
func (n *Node) problemLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ProblemInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.updateProblems(now)
		}
	}
}

func (n *Node) updateProblems(now time.Time) {
	cur := n.findProblems(now)
	n.problems.mu.Lock()
	appeared, resolved := n.problems.set.Update(now, cur)
	n.problems.mu.Unlock()
	for _, p := range appeared {
		n.log.Warn(p.Message, "problem", p.Code)
	}
	for _, p := range resolved {
		n.log.Info("problem resolved", "problem", p.Code)
	}
}

// findProblems returns what is wrong now, code -> message (what is wrong
// and what to do).
func (n *Node) findProblems(now time.Time) map[string]string {
	cur := map[string]string{}
	net := n.network.NetworkID
	boot := map[peer.ID]bool{}
	for _, ai := range n.bootPeers {
		boot[ai.ID] = true
	}

	// Peers we dialed (our own join) that speak proofmesh but not our
	// network at our major. Peers that dialed us are their operators'
	// business: the mesh logs them once each. A peer found by discovery
	// counts only while we have no compatible peer: any host can claim
	// another major or network in identify, and one stranger's claim must
	// not tell the operator of a node that has joined to upgrade or to
	// change networks. Bootstrap peers, which the operator chose, always
	// count.
	joined := n.hasPeers()
	var otherNets, otherMajors []string
	for _, p := range n.mesh.Incompatible() {
		if !boot[p.ID] && (!p.Outbound || joined) {
			continue
		}
		what := p.Describe(net)
		if boot[p.ID] {
			what = "bootstrap " + what
		}
		if p.Kind == protocol.OtherMajor {
			otherMajors = append(otherMajors, what)
		} else {
			otherNets = append(otherNets, what)
		}
	}
	if len(otherNets) > 0 {
		cur[protocol.ProblemNetworkMismatch] = fmt.Sprintf("%s: nodes of different networks never talk. "+
			"To join that network, start with its network.json (--network FILE); to join %s, bootstrap from a node of %s.",
			firstFew(otherNets), net, net)
	}
	if len(otherMajors) > 0 {
		cur[protocol.ProblemProtocolMismatch] = fmt.Sprintf("%s: nodes of different protocol majors do not mix. "+
			"Upgrade the older side, or bootstrap from a node of protocol v%d (docs/PROTOCOL.md).",
			firstFew(otherMajors), protocol.ProtocolMajor)
	}

	if fs := n.keeper.Failures(); len(fs) > 0 {
		var parts []string
		for _, f := range fs {
			parts = append(parts, fmt.Sprintf("bootstrap address %s cannot be dialed: %v (%d attempts since %s)",
				bootAddr(f.Peer), strings.Join(strings.Fields(f.Err.Error()), " "), f.Attempts, f.Since.UTC().Format(time.RFC3339)))
		}
		cur[protocol.ProblemBootstrapUnreachable] = firstFew(parts) + ". Check the address (`proofmesh id` on that node prints it), " +
			"that the node runs, and that its port is open to this machine; the node keeps retrying."
	}

	if now.Sub(n.started) >= n.cfg.NoPeersAfter && !joined {
		// "found 30s after start" read wrong on a node running for
		// minutes whose peers had just left (a new user's walkthrough of
		// 2026-12-07): say how long it has run.
		when := fmt.Sprintf("%s after start", n.cfg.NoPeersAfter)
		if up := now.Sub(n.started); up >= 2*n.cfg.NoPeersAfter {
			when = fmt.Sprintf("now (the node has run for %s)", up.Round(time.Second))
		}
		if len(n.bootPeers) == 0 {
			cur[protocol.ProblemNoPeers] = fmt.Sprintf("no peer of network %s found %s, and no bootstrap address is configured: "+
				"start with --bootstrap ADDR (from `proofmesh id` on a running node) or a network.json that lists bootstrap nodes.", net, when)
		} else {
			cur[protocol.ProblemNoPeers] = fmt.Sprintf("no peer of network %s found %s (%d bootstrap address(es)): "+
				"check the bootstrap addresses, that they run network %s, and the other problems listed.", net, when, len(n.bootPeers), net)
		}
	}

	if off, voters := n.mesh.ClockOffset(); protocol.ClockOff(off, voters, n.mesh.ClockSkew()) {
		dir := "behind"
		if off < 0 {
			dir, off = "ahead of", -off
		}
		cur[protocol.ProblemClockSkew] = fmt.Sprintf("this node's clock is %s %s the median of %d peers (allowed ±%s): "+
			"peers ignore its heartbeats, tasks and leave notices. Synchronise the clock (NTP, e.g. `timedatectl set-ntp true`).",
			off.Round(time.Second), dir, voters, n.mesh.ClockSkew())
	}
	return cur
}

// hasPeers reports whether the node has met a peer of its network: one
// whose heartbeats arrive, or a connected one that serves our network at
// our major (a bootstrap-only node sends no heartbeats).
func (n *Node) hasPeers() bool {
	for _, p := range n.mesh.Peers() {
		if p.Status == protocol.StatusOnline {
			return true
		}
	}
	for _, id := range n.mesh.Host().Network().Peers() {
		if pp, ok := n.mesh.PeerProtocols(id); ok && pp.Classify(n.network.NetworkID, protocol.ProtocolMajor) == protocol.Compatible {
			return true
		}
	}
	return false
}

// bootAddr is a bootstrap peer as the operator wrote it: its first
// address with /p2p/<id>.
func bootAddr(ai peer.AddrInfo) string {
	addrs, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil || len(addrs) == 0 {
		return ai.ID.String()
	}
	return addrs[0].String()
}

// firstFew joins up to three items and says how many more there are.
func firstFew(items []string) string {
	if len(items) <= 3 {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:3], "; ") + fmt.Sprintf("; and %d more", len(items)-3)
}
