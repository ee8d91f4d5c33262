package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// ErrCheckpointMismatch is wrapped when an audit chain does not hold the
// entry a signed checkpoint names: the chain was rewritten or truncated
// after the checkpoint was taken.
var ErrCheckpointMismatch = errors.New("audit chain does not match the checkpoint")

// AuditCheckpoint signs the head of the audit chain with the node's key.
// An auditor who keeps checkpoints (GET /api/v1/audit/checkpoint, say once
// a day) can later prove that the chain was rewritten, which the chain
// alone cannot show: whoever holds the store can rebuild a consistent one.
func (n *Node) AuditCheckpoint() (api.AuditCheckpoint, error) {
	seq, hash, err := n.db.AuditHead()
	if err != nil {
		return api.AuditCheckpoint{}, err
	}
	if seq == 0 {
		return api.AuditCheckpoint{}, fmt.Errorf("%w: the audit chain is empty", api.ErrConflict)
	}
	now := time.Now()
	cp := protocol.AuditCheckpoint{NodeID: n.id.String(), Seq: seq, Hash: hash, Time: now.UnixMilli()}
	env, err := protocol.Seal(&cp, n.key)
	if err != nil {
		return api.AuditCheckpoint{}, err
	}
	return api.AuditCheckpoint{NodeID: cp.NodeID, Seq: seq, Hash: hash, Time: time.UnixMilli(cp.Time).UTC(), Envelope: env}, nil
}

// VerifyAuditFile checks the audit chain of a stopped node's data dir and
// that it holds every checkpoint's entry. A checkpoint must be signed by
// the data dir's own identity. It returns the number of entries checked.
func VerifyAuditFile(dataDir string, checkpoints ...[]byte) (int, error) {
	path := filepath.Join(dataDir, StoreFile)
	var self peer.ID
	if len(checkpoints) > 0 {
		key, err := LoadIdentity(dataDir)
		if err != nil {
			return 0, err
		}
		if self, err = peer.IDFromPrivateKey(key); err != nil {
			return 0, err
		}
	}
	db, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	n, err := db.VerifyAudit()
	if err != nil {
		return n, err
	}
	for i, raw := range checkpoints {
		cp, err := protocol.OpenAuditCheckpoint(raw)
		if err != nil {
			return n, fmt.Errorf("checkpoint %d: %w", i+1, err)
		}
		if cp.NodeID != self.String() {
			return n, fmt.Errorf("checkpoint %d: signed by %s, this data dir is %s", i+1, cp.NodeID, self)
		}
		es, err := db.AuditEntries(cp.Seq, 1)
		if err != nil {
			return n, err
		}
		taken := time.UnixMilli(cp.Time).UTC().Format(time.RFC3339)
		if len(es) == 0 || es[0].Seq != cp.Seq {
			return n, fmt.Errorf("%w: checkpoint %d (taken %s) names entry %d, the chain has %d entries", ErrCheckpointMismatch, i+1, taken, cp.Seq, n)
		}
		if es[0].Hash != cp.Hash {
			return n, fmt.Errorf("%w: checkpoint %d (taken %s): entry %d has hash %.16s…, the checkpoint says %.16s…", ErrCheckpointMismatch, i+1, taken, cp.Seq, es[0].Hash, cp.Hash)
		}
	}
	return n, nil
}
