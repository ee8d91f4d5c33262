package mesh

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ErrListenInUse is a listen address another process already holds.
var ErrListenInUse = errors.New("listen address already in use")

// checkListenFree binds each listen address with a fixed port once, plainly,
// and lets it go. libp2p's TCP transport listens with SO_REUSEPORT (so
// that its outbound connections leave from the listen port, which NAT
// traversal needs), and Linux lets a second socket with that option bind a
// port the first holds: a second node given an occupied port started,
// and the kernel split the first node's inbound connections between the
// two (a new user's walkthrough of 2026-12-07). A plain bind refuses an
// occupied port whatever the holder's options, so a node given one stops
// at start and says which. Port 0 (any) and addresses that are not IP
// TCP or UDP are left to libp2p.
func checkListenFree(addrs []string) error {
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue // libp2p names it
		}
		network, hostport, err := manet.DialArgs(a)
		if err != nil {
			continue
		}
		_, port, err := net.SplitHostPort(hostport)
		if err != nil || port == "0" {
			continue
		}
		var closeFn func() error
		switch network {
		case "tcp", "tcp4", "tcp6":
			l, err := net.Listen(network, hostport)
			if err != nil {
				if inUse(err) {
					return listenErr(s)
				}
				continue // libp2p says what else is wrong (or its transport does not bind a socket)
			}
			closeFn = l.Close
		case "udp", "udp4", "udp6":
			c, err := net.ListenPacket(network, hostport)
			if err != nil {
				if inUse(err) {
					return listenErr(s)
				}
				continue
			}
			closeFn = c.Close
		default:
			continue
		}
		_ = closeFn()
	}
	return nil
}

func inUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

func listenErr(addr string) error {
	return fmt.Errorf("%w: %s (another process, perhaps another node, listens there; pick another --listen port)", ErrListenInUse, addr)
}
