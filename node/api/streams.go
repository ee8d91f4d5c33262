package api

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// streamSlots counts the open event streams per client and in all.
type streamSlots struct {
	perClient, total int

	mu   sync.Mutex
	open map[string]int
	n    int
}

func newStreamSlots(perClient, total int) *streamSlots {
	return &streamSlots{perClient: perClient, total: total, open: map[string]int{}}
}

// acquire takes a slot for who, or says which limit is reached.
func (s *streamSlots) acquire(who string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.open[who] >= s.perClient:
		return nil, fmt.Errorf("too many event streams for %s: at most %d per client (max_streams_per_client); close one first", who, s.perClient)
	case s.n >= s.total:
		return nil, fmt.Errorf("too many event streams on this node: at most %d in total (max_streams); retry later", s.total)
	}
	s.open[who]++
	s.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.n--
			if s.open[who]--; s.open[who] == 0 {
				delete(s.open, who)
			}
		})
	}, nil
}

// streamWriter bounds each write of an event stream by its own deadline.
type streamWriter struct {
	*statusWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *streamWriter) Write(b []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.statusWriter.Write(b)
}

func (w *streamWriter) Flush() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	w.statusWriter.Flush()
}
