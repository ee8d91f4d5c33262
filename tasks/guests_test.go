package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr/mimc"

	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/protocol/spec"
	"github.com/proofmesh/proofmesh/sandbox"
	"github.com/proofmesh/proofmesh/tasks"
)

// guestLimits are the limits the guests run under in these tests: those
// of a task type's profile, with room for the race detector.
func guestLimits() sandbox.Limits {
	return sandbox.Limits{
		MaxMemoryPages: 512, // 32 MiB; the Go guests peak near 60 pages
		Timeout:        60 * time.Second,
		Fuel:           2_000_000_000,
		MaxInputBytes:  4096,
		MaxOutputBytes: 4096,
	}
}

// testCacheDir keeps compiled guests between test runs: compiling a Go
// guest takes seconds, tens of seconds under the race detector. It is
// per user, so nobody else can plant compiled code in it.
func testCacheDir(t *testing.T) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "proofmesh", "test-wazero-cache")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return t.TempDir()
	}
	return dir
}

// guestSandbox returns a sandbox with both guests compiled, in parallel.
func guestSandbox(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	ctx := context.Background()
	cfg := sandbox.DefaultConfig()
	cfg.CacheDir = testCacheDir(t)
	cfg.Workers = max(cfg.Workers, 2)
	s, err := sandbox.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, id := range tasks.TypeIDs() {
		wg.Go(func() {
			m, _ := tasks.Module(id)
			errs[i] = s.Compile(ctx, m)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs the guest of typeID on each input, two at a time, and returns
// the outputs and errors in order.
func run(t *testing.T, s *sandbox.Sandbox, typeID string, inputs []string) ([]string, []error) {
	t.Helper()
	m, ok := tasks.Module(typeID)
	if !ok {
		t.Fatalf("no module for %s", typeID)
	}
	outs := make([]string, len(inputs))
	errs := make([]error, len(inputs))
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Go(func() {
			out, _, err := s.Run(context.Background(), m, []byte(in), guestLimits())
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	return outs, errs
}

// nativeChain is mimc.chain.v1 computed natively with gnark-crypto.
func nativeChain(x *big.Int) *big.Int {
	var e fr.Element
	e.SetBigInt(x)
	for range spec.MiMCChainLength {
		h := mimc.NewMiMC()
		b := e.Bytes()
		if _, err := h.Write(b[:]); err != nil {
			panic(err)
		}
		e.SetBytes(h.Sum(nil))
	}
	var y big.Int
	return e.BigInt(&y)
}

func TestMiMCGuestMatchesNative(t *testing.T) {
	s := guestSandbox(t)
	r := fr.Modulus()
	xs := []*big.Int{
		big.NewInt(0), big.NewInt(1), big.NewInt(2), big.NewInt(42),
		new(big.Int).Sub(r, big.NewInt(1)), // r-1, the largest element
		new(big.Int).Sub(r, big.NewInt(2)),
		new(big.Int).Lsh(big.NewInt(1), 253),
		new(big.Int).SetUint64(1<<64 - 1),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		var e fr.Element
		e.SetUint64(rng.Uint64())
		e.Square(&e).Mul(&e, &e) // spread over the field
		xs = append(xs, e.BigInt(new(big.Int)))
	}
	inputs := make([]string, len(xs))
	for i, x := range xs {
		inputs[i] = fmt.Sprintf(`{"x":%q}`, x.String())
		if err := protocol.CheckInput(spec.TypeMiMCChain, []byte(inputs[i])); err != nil {
			t.Fatalf("input %s: CheckInput: %v", inputs[i], err)
		}
	}
	inputs = append(inputs, "  {\n \"x\" : \"7\" }\n") // whitespace is fine
	xs = append(xs, big.NewInt(7))
	outs, errs := run(t, s, spec.TypeMiMCChain, inputs)
	for i, x := range xs {
		if errs[i] != nil {
			t.Errorf("x=%s: %v", x, errs[i])
			continue
		}
		if want := fmt.Sprintf(`{"y":"%s"}`, nativeChain(x)); outs[i] != want {
			t.Errorf("x=%s: guest %s, native %s", x, outs[i], want)
		}
	}
}

func TestMLPGuestMatchesSpec(t *testing.T) {
	s := guestSandbox(t)
	var vectors [][spec.MLPInputs]int64
	var zeros, maxes, mins, alternating [spec.MLPInputs]int64
	for i := range spec.MLPInputs {
		maxes[i], mins[i] = 127, -128
		alternating[i] = int64(127 - 255*(i%2))
	}
	vectors = append(vectors, zeros, maxes, mins, alternating)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 12 {
		var x [spec.MLPInputs]int64
		for i := range x {
			x[i] = rng.Int64N(256) - 128
		}
		vectors = append(vectors, x)
	}
	inputs := make([]string, len(vectors))
	for i, x := range vectors {
		inputs[i] = `{"x":` + strings.Join(strings.Fields(fmt.Sprint(x[:])), ",") + `}`
		if err := protocol.CheckInput(spec.TypeMLPInfer, []byte(inputs[i])); err != nil {
			t.Fatalf("input %s: CheckInput: %v", inputs[i], err)
		}
	}
	outs, errs := run(t, s, spec.TypeMLPInfer, inputs)
	classes := make(map[int]bool)
	for i, x := range vectors {
		if errs[i] != nil {
			t.Errorf("x=%v: %v", x, errs[i])
			continue
		}
		scores, class := spec.MLPInfer(x)
		classes[class] = true
		want := fmt.Sprintf(`{"scores":[%d,%d,%d,%d],"class":%d}`, scores[0], scores[1], scores[2], scores[3], class)
		if outs[i] != want {
			t.Errorf("x=%v: guest %s, spec %s", x, outs[i], want)
		}
	}
	if len(classes) < 2 {
		t.Errorf("the inputs reach only classes %v: too weak a test", classes)
	}
}

func TestGuestsRejectBadInput(t *testing.T) {
	s := guestSandbox(t)
	r := fr.Modulus().String()
	seq := func(n int, v string) string {
		return `{"x":[` + strings.TrimSuffix(strings.Repeat(v+",", n), ",") + `]}`
	}
	cases := map[string][]string{
		spec.TypeMiMCChain: {
			``, `null`, `{}`, `{"x":1}`, `{"x":"-1"}`, `{"x":"01"}`, `{"x":"1.5"}`, `{"x":"0x10"}`,
			`{"x":"` + r + `"}`, `{"x":"1","y":"2"}`, `{"x":"1"}{}`, `{"x":"1"`, `[1]`,
		},
		spec.TypeMLPInfer: {
			``, `{}`, seq(15, "1"), seq(17, "1"), seq(16, "128"), seq(16, "-129"), seq(16, "1.5"),
			seq(16, `"1"`), seq(16, "1e1"), `{"x":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"z":0}`, seq(16, "1") + "x",
		},
	}
	for typeID, inputs := range cases {
		_, errs := run(t, s, typeID, inputs)
		for i, in := range inputs {
			// Submission screening refuses them too, so they never reach
			// an executor.
			if protocol.CheckInput(typeID, []byte(in)) == nil {
				t.Errorf("%s input %q: protocol.CheckInput accepts what the guest refuses", typeID, in)
			}
			err := errs[i]
			if !errors.Is(err, sandbox.ErrExit) || !strings.Contains(err.Error(), "code 1") || !strings.Contains(err.Error(), typeID) {
				t.Errorf("%s input %q: err = %v; want exit code 1 with a message naming the type", typeID, in, err)
			}
		}
	}
}

// TestGuestLimits runs a real Go guest into each limit: the errors name
// the limit, and the fuel a run spends is the same every time, so a budget
// runs out identically on every node.
func TestGuestLimits(t *testing.T) {
	s := guestSandbox(t)
	m, _ := tasks.Module(spec.TypeMiMCChain)
	in := []byte(`{"x":"3"}`)
	ctx := context.Background()
	_, st1, err := s.Run(ctx, m, in, guestLimits())
	if err != nil {
		t.Fatal(err)
	}
	_, st2, err := s.Run(ctx, m, in, guestLimits())
	if err != nil {
		t.Fatal(err)
	}
	if st1.FuelUsed != st2.FuelUsed || st1.PeakMemoryPages != st2.PeakMemoryPages {
		t.Fatalf("two runs: fuel %d and %d, peak memory %d and %d pages",
			st1.FuelUsed, st2.FuelUsed, st1.PeakMemoryPages, st2.PeakMemoryPages)
	}
	tests := []struct {
		name string
		lim  func(*sandbox.Limits)
		want error
	}{
		{"fuel", func(l *sandbox.Limits) { l.Fuel = st1.FuelUsed - 1 }, sandbox.ErrFuelExhausted},
		{"memory to grow", func(l *sandbox.Limits) { l.MaxMemoryPages = st1.PeakMemoryPages - 1 }, sandbox.ErrMemoryLimit},
		{"memory to start", func(l *sandbox.Limits) { l.MaxMemoryPages = 8 }, sandbox.ErrMemoryLimit},
		{"time", func(l *sandbox.Limits) { l.Timeout = time.Nanosecond }, sandbox.ErrTimeout}, // the guest needs milliseconds
		{"output", func(l *sandbox.Limits) { l.MaxOutputBytes = 10 }, sandbox.ErrOutputTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := guestLimits()
			tc.lim(&lim)
			out, st, err := s.Run(ctx, m, in, lim)
			if !errors.Is(err, tc.want) || out != nil {
				t.Fatalf("err = %v, output %q; want %v", err, out, tc.want)
			}
			if tc.want == sandbox.ErrFuelExhausted && st.FuelUsed != lim.Fuel {
				t.Errorf("fuel used %d, budget %d", st.FuelUsed, lim.Fuel)
			}
		})
	}
}
