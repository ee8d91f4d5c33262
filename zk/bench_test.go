package zk

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/proofmesh/proofmesh/protocol/spec"
)

// benchStatement returns the i-th distinct valid statement of a circuit.
func benchStatement(circuit string, i int) (input, output []byte) {
	switch circuit {
	case spec.TypeMiMCChain:
		var x fr.Element
		x.SetUint64(uint64(1_000_000 + i))
		y := mimcChain(x)
		return []byte(`{"x":"` + decimal(x) + `"}`), []byte(`{"y":"` + decimal(y) + `"}`)
	default:
		var x [spec.MLPInputs]int64
		for j := range x {
			x[j] = int64((i*61+j*17)%256) - 128
		}
		scores, class := spec.MLPInfer(x)
		return formatMLPInput(x), formatMLPOutput(scores, int64(class))
	}
}

// benchItems proves n statements, at most distinct of them distinct (the
// rest repeat, with their own bindings kept: repeated proofs cost the
// verifier the same).
func benchItems(b *testing.B, ks *KeySet, circuit string, n, distinct int) []BatchItem {
	b.Helper()
	p := NewProver(ks, 1)
	items := make([]BatchItem, n)
	for i := range items {
		if i >= distinct {
			items[i] = items[i%distinct]
			continue
		}
		in, out := benchStatement(circuit, i)
		bind := Binding([]byte(fmt.Sprintf("bench task %d", i)), []byte("bench executor"))
		proof, err := p.Prove(context.Background(), circuit, in, out, bind)
		if err != nil {
			b.Fatal(err)
		}
		items[i] = BatchItem{Proof: proof, Input: in, Output: out, Binding: bind}
	}
	return items
}

// BenchmarkProve reports prove time, constraints, proof and key sizes per
// circuit, with the shipped keys.
func BenchmarkProve(b *testing.B) {
	ks := defaultKeysT(b)
	for _, id := range CircuitIDs() {
		b.Run(id, func(b *testing.B) {
			p := NewProver(ks, 1)
			in, out := benchStatement(id, 0)
			bind := big.NewInt(1)
			// parse the proving key and compile the circuit first.
			proof, err := p.Prove(context.Background(), id, in, out, bind)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := p.Prove(context.Background(), id, in, out, bind); err != nil {
					b.Fatal(err)
				}
			}
			m := ks.Manifest().Circuits[id]
			b.ReportMetric(float64(m.Constraints), "constraints")
			b.ReportMetric(float64(len(proof)), "proof-B")
			b.ReportMetric(float64(m.ProvingKeyBytes), "pk-B")
			b.ReportMetric(float64(m.VerifyingKeyBytes), "vk-B")
		})
	}
}

// BenchmarkVerify reports single-proof verification time per circuit.
func BenchmarkVerify(b *testing.B) {
	ks := defaultKeysT(b)
	for _, id := range CircuitIDs() {
		b.Run(id, func(b *testing.B) {
			it := benchItems(b, ks, id, 1, 1)[0]
			for b.Loop() {
				if err := ks.Verify(id, it.Proof, it.Input, it.Output, it.Binding); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatchVerify compares, in the same run and on the same proofs,
// BatchVerify with one-by-one Verify at batch sizes 1, 8 and 64, and
// reports the time per proof of each and their ratio (speedup).
func BenchmarkBatchVerify(b *testing.B) {
	ks := defaultKeysT(b)
	for _, id := range CircuitIDs() {
		distinct := 64
		if id == spec.TypeMiMCChain {
			distinct = 8 // proving 64 MiMC chains would dominate the run
		}
		all := benchItems(b, ks, id, 64, distinct)
		for _, n := range []int{1, 8, 64} {
			items := all[:n]
			b.Run(fmt.Sprintf("%s/n=%d", id, n), func(b *testing.B) {
				var single, batch time.Duration
				for b.Loop() {
					t := time.Now()
					for _, it := range items {
						if err := ks.Verify(id, it.Proof, it.Input, it.Output, it.Binding); err != nil {
							b.Fatal(err)
						}
					}
					single += time.Since(t)
					t = time.Now()
					if bad, err := ks.BatchVerify(id, items); err != nil || bad != nil {
						b.Fatalf("bad %v, err %v", bad, err)
					}
					batch += time.Since(t)
				}
				perSingle := float64(single.Microseconds()) / float64(b.N*n)
				perBatch := float64(batch.Microseconds()) / float64(b.N*n)
				b.ReportMetric(perSingle, "µs/proof-single")
				b.ReportMetric(perBatch, "µs/proof-batch")
				b.ReportMetric(perSingle/perBatch, "speedup")
				b.ReportMetric(float64(n)/batch.Seconds()*float64(b.N), "proofs/s-batch")
			})
		}
	}
}

// BenchmarkCeremony runs the full ceremony (2 + 2 contributions, each
// verified, and the self-check) for mlp.infer.v1. The mimc.chain.v1
// ceremony (domain 2^15) takes minutes and is not benchmarked here; the
// shipped keys' ceremony log gives its figures.
func BenchmarkCeremony(b *testing.B) {
	for b.Loop() {
		if _, err := RunCeremony(context.Background(), CeremonyOptions{
			OutDir: b.TempDir(), Circuits: []string{spec.TypeMLPInfer}, Contributions: 2,
		}); err != nil {
			b.Fatal(err)
		}
	}
}
