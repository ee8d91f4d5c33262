package residency

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPolicyPercent(t *testing.T) {
	p := GCPolicy{SmallHeap: 32 << 20, Small: 25, Large: 100}
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 25},
		{4 << 20, 25},
		{32<<20 - 1, 25},
		{32 << 20, 100},
		{1 << 30, 100},
	} {
		if got := p.Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

func gogc() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// waitGOGC collects until the policy's finalizer has set want (it runs on
// the finalizer goroutine after a collection).
func waitGOGC(t *testing.T, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for gogc() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOGC %d, want %d", what, gogc(), want)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func unsetGOGC(t *testing.T) {
	t.Helper()
	if v, ok := os.LookupEnv("GOGC"); ok {
		_ = os.Unsetenv("GOGC")
		t.Cleanup(func() { _ = os.Setenv("GOGC", v) })
	}
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
}

var hold []byte

// The collector's GOGC follows the live heap across collections: small
// while it is small, large while a big allocation is live, small again
// once it is freed; stop restores the large one for good.
func TestAdaptGCFollowsLiveHeap(t *testing.T) {
	unsetGOGC(t)
	stop := AdaptGC(GCPolicy{SmallHeap: 64 << 20, Small: 30, Large: 150})
	waitGOGC(t, 30, "small live heap")

	hold = make([]byte, 128<<20)
	for i := 0; i < len(hold); i += 4096 {
		hold[i] = 1 // touched, so it is really held
	}
	waitGOGC(t, 150, "128 MiB live")
	hold = nil
	waitGOGC(t, 30, "freed again")

	stop()
	if got := gogc(); got != 150 {
		t.Fatalf("after stop: GOGC %d, want 150", got)
	}
	for range 3 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond)
	if got := gogc(); got != 150 {
		t.Fatalf("collections after stop changed GOGC to %d", got)
	}
}

// An operator's GOGC wins: the policy leaves it alone.
func TestAdaptGCLeavesAnOperatorsGOGC(t *testing.T) {
	unsetGOGC(t)
	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200)
	stop := AdaptGC(GCPolicy{SmallHeap: 1 << 40, Small: 10, Large: 100})
	defer stop()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond)
	if got := gogc(); got != 200 {
		t.Fatalf("GOGC %d with the operator's 200 set", got)
	}
}
