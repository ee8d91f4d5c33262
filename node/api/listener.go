package api

import (
	"net"
	"net/http"
	"sync"
)

// Listener caps the open connections of each client address. Over the
// cap, an idle keep-alive connection of the same address is closed to
// make room; if none is idle, the new connection is closed at accept. So
// a flood of idle connections cannot lock out a client that talks, and
// no address holds more than the cap.
type Listener struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[string]map[*limitedConn]bool // address -> open connections
}

// Listen wraps ln with a per-address cap of max connections. Give the
// server its ConnState (NewServer does) so idle connections can be told.
func Listen(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, max: max, conns: map[string]map[*limitedConn]bool{}}
}

type limitedConn struct {
	net.Conn
	l    *Listener
	addr string
	once sync.Once
	idle bool // under l.mu
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns[c.addr], c)
		if len(c.l.conns[c.addr]) == 0 {
			delete(c.l.conns, c.addr)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Accept returns the next connection within its address's cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := c.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		lc := &limitedConn{Conn: c, l: l, addr: addr}
		l.mu.Lock()
		set := l.conns[addr]
		var evict *limitedConn
		if len(set) >= l.max {
			for o := range set {
				if o.idle {
					evict = o
					break
				}
			}
			if evict == nil {
				l.mu.Unlock()
				_ = c.Close()
				continue
			}
			delete(set, evict)
		}
		if set == nil {
			set = map[*limitedConn]bool{}
			l.conns[addr] = set
		}
		set[lc] = true
		l.mu.Unlock()
		if evict != nil {
			_ = evict.Close()
		}
		return lc, nil
	}
}

// ConnState records which connections are idle between requests.
func (l *Listener) ConnState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	lc.idle = st == http.StateIdle
	l.mu.Unlock()
}

// Open returns the number of open connections of an address.
func (l *Listener) Open(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns[addr])
}
