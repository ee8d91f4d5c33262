package protocol

import (
	"fmt"
	"testing"
	"time"
)

func TestProblemsAppearOnceAndResolve(t *testing.T) {
	var p Problems
	t0 := time.Date(2026, 11, 27, 20, 0, 0, 500, time.UTC)
	if l := p.List(); l == nil || len(l) != 0 {
		t.Fatalf("empty set lists %#v", l)
	}
	steps := []struct {
		now               time.Time
		current           map[string]string
		appeared, resolve []string
		list              []string
	}{
		{t0, map[string]string{ProblemNoPeers: "none"}, []string{ProblemNoPeers}, nil, []string{ProblemNoPeers}},
		{t0.Add(time.Second), map[string]string{ProblemNoPeers: "still none", ProblemClockSkew: "off"}, []string{ProblemClockSkew}, nil, []string{ProblemClockSkew, ProblemNoPeers}},
		{t0.Add(2 * time.Second), map[string]string{ProblemClockSkew: "off by more"}, nil, []string{ProblemNoPeers}, []string{ProblemClockSkew}},
		{t0.Add(3 * time.Second), nil, nil, []string{ProblemClockSkew}, nil},
		{t0.Add(4 * time.Second), map[string]string{ProblemNoPeers: "again"}, []string{ProblemNoPeers}, nil, []string{ProblemNoPeers}},
	}
	for i, s := range steps {
		app, res := p.Update(s.now, s.current)
		if got := codes(app); fmt.Sprint(got) != fmt.Sprint(s.appeared) {
			t.Errorf("step %d appeared %v, want %v", i, got, s.appeared)
		}
		if got := codes(res); fmt.Sprint(got) != fmt.Sprint(s.resolve) {
			t.Errorf("step %d resolved %v, want %v", i, got, s.resolve)
		}
		if got := codes(p.List()); fmt.Sprint(got) != fmt.Sprint(s.list) {
			t.Errorf("step %d list %v, want %v", i, got, s.list)
		}
	}
	// A persisting problem keeps its start and takes the latest wording.
	p = Problems{}
	p.Update(t0, map[string]string{ProblemClockSkew: "a"})
	p.Update(t0.Add(time.Minute), map[string]string{ProblemClockSkew: "b"})
	if l := p.List(); l[0].Message != "b" || !l[0].Since.Equal(t0.Truncate(time.Second)) {
		t.Fatalf("%+v", l)
	}
}

func codes(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Code)
	}
	return out
}

func TestClockOffsetEstimate(t *testing.T) {
	now := time.Now()
	s := time.Second
	skew := DefaultClockSkew
	for _, tc := range []struct {
		name    string
		offsets map[string]time.Duration
		median  time.Duration
		voters  int
		off     bool
	}{
		{"no peers", nil, 0, 0, false},
		{"in step", map[string]time.Duration{"a": 0, "b": s, "c": -s}, 0, 3, false},
		{"we are behind, all agree", map[string]time.Duration{"a": 120 * s, "b": 121 * s, "c": 119 * s}, 120 * s, 3, true},
		{"we are ahead, all agree", map[string]time.Duration{"a": -90 * s, "b": -91 * s, "c": -89 * s, "d": -90 * s}, -90 * s, 4, true},
		{"two voters are not enough", map[string]time.Duration{"a": 120 * s, "b": 120 * s}, 120 * s, 2, false},
		{"one liar among honest peers", map[string]time.Duration{"liar": 3600 * s, "a": 0, "b": s}, s, 3, false},
		{"two liars among three honest", map[string]time.Duration{"l1": -3600 * s, "l2": 3600 * s, "a": 0, "b": s, "c": 2 * s}, s, 5, false},
		{"liars in a minority on one side", map[string]time.Duration{"l1": 3600 * s, "l2": 3600 * s, "a": 0, "b": s, "c": -s}, s, 5, false},
		{"just within the skew", map[string]time.Duration{"a": 30 * s, "b": 30 * s, "c": 30 * s}, 30 * s, 3, false},
		{"even count: mean of the middle two", map[string]time.Duration{"a": 40 * s, "b": 60 * s, "c": 50 * s, "d": 70 * s}, 55 * s, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClockOffsets(16, time.Minute)
			for v, o := range tc.offsets {
				c.Add(v, o, now)
			}
			m, n := c.Estimate(now)
			if m != tc.median || n != tc.voters || ClockOff(m, n, skew) != tc.off {
				t.Fatalf("median %s voters %d off %v; want %s %d %v", m, n, ClockOff(m, n, skew), tc.median, tc.voters, tc.off)
			}
		})
	}
}

func TestClockOffsetsBoundedAndFresh(t *testing.T) {
	now := time.Now()
	c := NewClockOffsets(3, time.Minute)
	c.Add("old", time.Hour, now.Add(-2*time.Minute))
	for i, v := range []string{"a", "b", "c"} {
		c.Add(v, 0, now.Add(time.Duration(i)*time.Millisecond))
	}
	if len(c.samples) != 3 {
		t.Fatalf("%d voters kept, bound 3", len(c.samples))
	}
	if _, ok := c.samples["old"]; ok {
		t.Fatal("the longest silent voter was not the one dropped")
	}
	// A voter's new sample replaces its old one: one voter, one vote.
	for range 10 {
		c.Add("a", time.Hour, now)
	}
	if m, n := c.Estimate(now); n != 3 || m != 0 {
		t.Fatalf("median %s of %d voters", m, n)
	}
	if _, n := c.Estimate(now.Add(2 * time.Minute)); n != 0 {
		t.Fatalf("stale samples counted: %d", n)
	}
}
