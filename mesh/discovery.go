package mesh

import (
	"context"
	"slices"
	"time"

	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// discoveryLoop advertises this node on the network's rendezvous and looks
// up the others there, connecting to those it has no connection to until
// it holds ConnHigh/2 connections: a node needs enough peers for gossipsub's
// meshes and failure detection, not a connection to everyone (what a node
// holds per connection would otherwise grow with the network). It looks
// every second while lookups keep finding new peers and backs off to
// DiscoveryInterval once they stop or it has enough, so a node given one
// bootstrap address meets the network quickly without querying forever.
func (m *Mesh) discoveryLoop() {
	defer m.wg.Done()
	rd := m.routingDiscovery()
	ns := Rendezvous(m.cfg.NetworkID)
	var advertisedUntil time.Time
	var advertised []ma.Multiaddr
	wait := time.Second
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(wait):
		}
		if m.kad.RoutingTable().Size() == 0 {
			wait = time.Second // nobody to ask yet; bootstrap will connect us
			continue
		}
		// Advertise once there is an address to advertise, and again when
		// the addresses change: DHT servers drop a provider record without
		// addresses, and a node behind a NAT has none until its relay
		// reservation (then only the relay's circuit addresses).
		if addrs := m.h.Addrs(); len(addrs) > 0 && (time.Now().After(advertisedUntil) || !slices.EqualFunc(addrs, advertised, ma.Multiaddr.Equal)) {
			ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
			ttl, err := rd.Advertise(ctx, ns)
			cancel()
			if err != nil {
				m.log.Debug("rendezvous advertise failed", "err", err)
			} else {
				advertisedUntil, advertised = time.Now().Add(ttl*7/8), addrs
			}
		}
		n := 0
		if !m.enoughPeers() {
			n = m.findPeers(rd, ns)
			m.log.Debug("rendezvous lookup", "new_peers", n, "routing_table", m.kad.RoutingTable().Size())
		}
		if n > 0 {
			wait = time.Second
		} else {
			wait = min(2*wait, m.cfg.DiscoveryInterval)
		}
	}
}

// findPeers runs one rendezvous lookup and returns how many new peers it
// connected to.
func (m *Mesh) findPeers(rd *drouting.RoutingDiscovery, ns string) int {
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	ch, err := rd.FindPeers(ctx, ns)
	if err != nil {
		m.log.Debug("rendezvous lookup failed", "err", err)
		return 0
	}
	n := 0
	for ai := range ch {
		if ai.ID == m.h.ID() || m.Connected(ai.ID) || m.enoughPeers() {
			continue // the channel is drained so the lookup ends
		}
		m.log.Debug("rendezvous peer", "peer", ai.ID, "addrs", ai.Addrs)
		if len(ai.Addrs) == 0 {
			m.log.Debug("rendezvous peer without addresses", "peer", ai.ID)
			continue
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.h.Connect(cctx, ai)
		ccancel()
		if err != nil {
			m.log.Debug("rendezvous peer unreachable", "peer", ai.ID, "err", err)
			continue
		}
		m.log.Debug("met peer through rendezvous", "peer", ai.ID)
		n++
	}
	return n
}

// enoughPeers reports whether this node holds connections to ConnHigh/2
// peers (0: no bound, a host given by the caller).
func (m *Mesh) enoughPeers() bool {
	return m.cfg.ConnHigh > 0 && m.ConnectedPeers() >= m.cfg.ConnHigh/2
}
