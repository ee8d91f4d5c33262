// Command ceremony runs proofmesh's Groth16 key ceremony (zk.RunCeremony)
// and writes the proving keys, verifying keys and manifest of the built-in
// circuits to a directory. The keys of the built-in default network, in
// zk/keys and embedded in the binary, were made with
//
//	go run ./zk/cmd/ceremony -out zk/keys -contributions 3
//
// from the repository root. Regenerating them changes every verifying-key
// hash: the built-in network configuration must pin the new hashes, and
// nodes with old and new keys no longer accept each other's proofs.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/proofmesh/proofmesh/zk"
)

func main() {
	out := flag.String("out", "", "directory for the keys and "+zk.ManifestFile+" (required)")
	contributions := flag.Int("contributions", zk.DefaultContributions, "phase-1 and phase-2 contributions (each)")
	circuits := flag.String("circuits", strings.Join(zk.CircuitIDs(), ","), "comma-separated circuit ids")
	beacon := flag.String("beacon", "", "public random beacon in hex (default: 32 random bytes)")
	flag.Parse()
	if err := run(*out, *contributions, *circuits, *beacon); err != nil {
		fmt.Fprintln(os.Stderr, "ceremony:", err)
		os.Exit(1)
	}
}

func run(out string, contributions int, circuits, beaconHex string) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	opt := zk.CeremonyOptions{
		OutDir:        out,
		Circuits:      strings.Split(circuits, ","),
		Contributions: contributions,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if beaconHex != "" {
		b, err := hex.DecodeString(beaconHex)
		if err != nil {
			return fmt.Errorf("-beacon: %w", err)
		}
		opt.Beacon = b
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	m, err := zk.RunCeremony(ctx, opt)
	if err != nil {
		return err
	}
	for _, id := range strings.Split(circuits, ",") {
		c := m.Circuits[id]
		fmt.Printf("%-14s constraints %6d  domain %6d  vk %5d B sha256 %s  pk %8d B sha256 %s\n",
			id, c.Constraints, c.Domain, c.VerifyingKeyBytes, c.VerifyingKeySHA256, c.ProvingKeyBytes, c.ProvingKeySHA256)
	}
	return nil
}
