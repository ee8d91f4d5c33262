package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

// A restart on the same port while the old process's connections sit in
// TIME_WAIT (the node closed them first) must not be taken for a port in
// use: Go's listener sets SO_REUSEADDR, so the plain bind passes.
func TestListenCheckPassesTimeWait(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	for range 3 {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Close() // the server closes first: its side goes to TIME_WAIT on port
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		_ = c.Close()
	}
	_ = l.Close()
	time.Sleep(50 * time.Millisecond)
	for _, a := range []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port)} {
		if err := checkListenFree([]string{a}); err != nil {
			t.Errorf("%s with TIME_WAIT connections only: %v", a, err)
		}
	}
}

// A port held on the wildcard with SO_REUSEPORT (as libp2p listens) is
// refused when asked for on a specific address, and the other way round.
func TestListenCheckWildcardVersusSpecific(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		})
		return errors.Join(err, serr)
	}}
	wild, err := lc.Listen(context.Background(), "tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	port := wild.Addr().(*net.TCPAddr).Port
	if err := checkListenFree([]string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}); !errors.Is(err, ErrListenInUse) {
		t.Errorf("specific address of a port held on the wildcard: %v", err)
	}
	spec, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer spec.Close()
	port = spec.Addr().(*net.TCPAddr).Port
	if err := checkListenFree([]string{fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port)}); !errors.Is(err, ErrListenInUse) {
		t.Errorf("wildcard of a port held on 127.0.0.1: %v", err)
	}
	u, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	defer u.Close()
	port = u.LocalAddr().(*net.UDPAddr).Port
	if err := checkListenFree([]string{fmt.Sprintf("/ip6/::1/udp/%d/quic-v1", port)}); !errors.Is(err, ErrListenInUse) {
		t.Errorf("QUIC on an IPv6 port in use: %v", err)
	}
}

// clockVoter keeps its own rule for private addresses: each address its
// own vote. Origin now makes a private IPv6 /64 one origin (a host may
// hold the whole /64), so a host on a ULA or link-local network casts one
// clock vote per address it connects from, while it counts as one
// replica origin.
func TestClockVoterAgreesWithOriginOnPrivateIPv6(t *testing.T) {
	a, b := netip.MustParseAddrPort("[fd00::1]:4001"), netip.MustParseAddrPort("[fd00::2]:4001")
	d := protocol.DefaultDiversity()
	if d.Origin(a) != d.Origin(b) {
		t.Fatalf("origins differ: the premise changed")
	}
	if va, vb := clockVoter(a), clockVoter(b); va != vb {
		t.Fatalf("one private /64 (origin %s) casts two clock votes: %q and %q", d.Origin(a), va, vb)
	}
}
