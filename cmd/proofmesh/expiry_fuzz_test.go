package main

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseExpiry feeds --expires values to parseExpiry: an accepted value
// is a positive duration, and one given in days is exactly that many
// days (a key must never expire sooner than asked), and what the CLI sends
// (d.String()) parses back to it.
func FuzzParseExpiry(f *testing.F) {
	for _, s := range []string{"30d", "12h", "1d", "0d", "-1d", "d", "1.5d", "90m", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseExpiry(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) && !strings.Contains(err.Error(), "--expires") {
				t.Fatalf("error does not name the value: %v", err)
			}
			return
		}
		if d <= 0 {
			t.Fatalf("--expires %q accepted as %s, not positive", s, d)
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			n, _ := strconv.Atoi(days)
			if d%(24*time.Hour) != 0 || int64(d/(24*time.Hour)) != int64(n) {
				t.Fatalf("--expires %q accepted as %s, not %d days", s, d, n)
			}
		}
		if again, err := time.ParseDuration(d.String()); err != nil || again != d {
			t.Fatalf("--expires %q sent as %q, which the node reads as %s (%v)", s, d.String(), again, err)
		}
	})
}

// FuzzParseBeacon feeds --beacon values to parseBeacon: an accepted value
// is at least 16 bytes, and is the hex the user gave (0x prefix optional).
func FuzzParseBeacon(f *testing.F) {
	for _, s := range []string{"0x" + strings.Repeat("ab", 16), strings.Repeat("00", 32), "0x", "abc", strings.Repeat("zz", 16)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseBeacon(s)
		if err != nil {
			return
		}
		if len(b) < 16 || hex.EncodeToString(b) != strings.ToLower(strings.TrimPrefix(s, "0x")) {
			t.Fatalf("--beacon %q accepted as %x", s, b)
		}
	})
}
