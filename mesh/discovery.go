package mesh

import (
	"context"
	"time"

	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// discoveryLoop advertises this node on the network's rendezvous and looks
// up the others there, connecting to those it has no connection to. It
// looks every second while lookups keep finding new peers and backs off to
// DiscoveryInterval once they stop, so a node given one bootstrap address
// meets the whole network quickly without querying forever.
func (m *Mesh) discoveryLoop() {
	defer m.wg.Done()
	rd := m.routingDiscovery()
	ns := Rendezvous(m.cfg.NetworkID)
	var advertisedUntil time.Time
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
		if time.Now().After(advertisedUntil) {
			ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
			ttl, err := rd.Advertise(ctx, ns)
			cancel()
			if err != nil {
				m.log.Debug("rendezvous advertise failed", "err", err)
			} else {
				advertisedUntil = time.Now().Add(ttl * 7 / 8)
			}
		}
		if n := m.findPeers(rd, ns); n > 0 {
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
		if ai.ID == m.h.ID() || len(ai.Addrs) == 0 || m.Connected(ai.ID) {
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
