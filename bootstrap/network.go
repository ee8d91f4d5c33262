// Package bootstrap owns joining a network: the network configuration
// (network.json, with a built-in default network), the bootstrap
// addresses, and keeping connections to the bootstrap peers alive with
// exponential backoff and jitter.
package bootstrap

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/protocol"
)

// MaxNetworkBytes bounds a network.json file.
const MaxNetworkBytes = 1 << 20

// ErrInvalidNetwork is wrapped by every error about a network config.
var ErrInvalidNetwork = errors.New("invalid network config")

// Network is a network's configuration: what network.json holds.
type Network struct {
	NetworkID string `json:"network_id"`
	// Bootstrap are multiaddrs ending in /p2p/<peer id>.
	Bootstrap []string `json:"bootstrap"`
	// Relays are circuit relays (multiaddrs ending in /p2p/<peer id>) that
	// nodes behind NATs reserve a slot with; optional.
	Relays    []string            `json:"relays,omitempty"`
	Policy    protocol.Policy     `json:"policy"`
	TaskTypes []protocol.TaskType `json:"task_types"`
	// ReplicaDiversity is the rule that keeps a task's candidates on
	// distinct network origins; absent means protocol.DefaultDiversity.
	ReplicaDiversity *protocol.Diversity `json:"replica_diversity,omitempty"`
}

// Diversity returns the network's replica diversity rule.
func (n *Network) Diversity() protocol.Diversity {
	if n.ReplicaDiversity == nil {
		return protocol.DefaultDiversity()
	}
	return *n.ReplicaDiversity
}

//go:embed default-network.json
var defaultNetwork []byte

// DefaultNetworkID is the id of the built-in default network.
const DefaultNetworkID = "devnet"

// DefaultNetwork returns the built-in default network: the default policy,
// the built-in task types with their module and verifying-key hashes
// pinned, and no bootstrap addresses.
func DefaultNetwork() *Network {
	n, err := DecodeNetwork(defaultNetwork)
	if err != nil {
		panic("bootstrap: built-in default network is invalid: " + err.Error())
	}
	return n
}

// LoadNetwork reads and checks a network.json file.
func LoadNetwork(path string) (*Network, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxNetworkBytes+1))
	if err != nil {
		return nil, fmt.Errorf("network config %s: %w", path, err)
	}
	n, err := DecodeNetwork(data)
	if err != nil {
		return nil, fmt.Errorf("network config %s: %w", path, err)
	}
	return n, nil
}

// DecodeNetwork parses and checks network.json bytes: unknown fields,
// trailing data, a bad network id, a bootstrap address without /p2p, a
// policy or a registry that cannot work are all refused with an error that
// names the field.
func DecodeNetwork(data []byte) (*Network, error) {
	if len(data) > MaxNetworkBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidNetwork, len(data), MaxNetworkBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var n Network
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidNetwork, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the object", ErrInvalidNetwork)
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return &n, nil
}

// Validate checks the network config.
func (n *Network) Validate() error {
	if !mesh.ValidNetworkID(n.NetworkID) {
		return fmt.Errorf("%w: network_id %q must be 1-32 of [a-z0-9-]", ErrInvalidNetwork, n.NetworkID)
	}
	if _, err := ParseAddrs(n.Bootstrap); err != nil {
		return fmt.Errorf("%w: bootstrap: %v", ErrInvalidNetwork, err)
	}
	if _, err := ParseAddrs(n.Relays); err != nil {
		return fmt.Errorf("%w: relays: %v", ErrInvalidNetwork, err)
	}
	if err := n.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: policy: %w", ErrInvalidNetwork, err)
	}
	if err := n.Diversity().Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidNetwork, err)
	}
	reg := protocol.Registry{}
	for _, t := range n.TaskTypes {
		if _, dup := reg[t.ID]; dup {
			return fmt.Errorf("%w: task type %q listed twice", ErrInvalidNetwork, t.ID)
		}
		reg[t.ID] = t
	}
	if err := reg.Validate(n.Policy); err != nil {
		return fmt.Errorf("%w: task_types: %w", ErrInvalidNetwork, err)
	}
	return nil
}

// Registry returns the task-type registry.
func (n *Network) Registry() protocol.Registry {
	reg := protocol.Registry{}
	for _, t := range n.TaskTypes {
		reg[t.ID] = t
	}
	return reg
}

// WithBootstrap returns a copy of the network with the given bootstrap
// addresses added (flags and environment add to the file's list).
func (n *Network) WithBootstrap(addrs []string) *Network {
	c := *n
	c.Bootstrap = slices.Clone(n.Bootstrap)
	for _, a := range addrs {
		if !slices.Contains(c.Bootstrap, a) {
			c.Bootstrap = append(c.Bootstrap, a)
		}
	}
	return &c
}

// ParseAddrs parses bootstrap multiaddrs (each must end in /p2p/<id>;
// entries may also be comma-separated) and merges addresses of the same
// peer.
func ParseAddrs(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, a := range addrs {
		for _, s := range strings.Split(a, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			m, err := ma.NewMultiaddr(s)
			if err != nil {
				return nil, fmt.Errorf("address %q: %w", s, err)
			}
			if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
				return nil, fmt.Errorf("address %q: must end in /p2p/<peer id>", s)
			}
			mas = append(mas, m)
		}
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, err
	}
	return infos, nil
}
