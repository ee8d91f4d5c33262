package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// PeerView is what ranking needs to know of one peer.
type PeerView struct {
	ID           string
	Status       PeerStatus
	Capabilities Capabilities
	TaskTypes    []string
	Load         float64 // 0..1
	Health       float64 // 0..1
	Verified     int     // results of this peer that verified
	Rejected     int     // results of this peer that failed verification
}

// Score ranks a peer for a task: healthy, idle peers with a record of
// verified results first. Rejected results weigh three times a verified one.
func (p PeerView) Score() float64 {
	rep := float64(p.Verified-3*p.Rejected) / float64(p.Verified+p.Rejected+1)
	return p.Health*(1-p.Load) + 0.5*rep
}

// Rank returns the ids of the online peers able to run a task of type tt,
// best first, at most max. Ties are broken by a hash of the task id and
// peer id, so equal peers share work instead of one always winning.
// ErrNoCapablePeer names why each peer was passed over when none is left.
func Rank(tt TaskType, taskSeed string, peers []PeerView, max int) ([]string, error) {
	type cand struct {
		id    string
		score float64
		tie   uint64
	}
	var cs []cand
	var why []string
	for _, p := range peers {
		switch {
		case p.Status != StatusOnline:
			why = append(why, fmt.Sprintf("%s is %s", short(p.ID), p.Status))
		case !slices.Contains(p.TaskTypes, tt.ID):
			why = append(why, fmt.Sprintf("%s does not serve %s", short(p.ID), tt.ID))
		default:
			if err := tt.Meets(p.Capabilities); err != nil {
				why = append(why, fmt.Sprintf("%s: %v", short(p.ID), err))
				continue
			}
			h := sha256.Sum256([]byte(taskSeed + "/" + p.ID))
			cs = append(cs, cand{p.ID, p.Score(), binary.BigEndian.Uint64(h[:8])})
		}
	}
	if len(cs) == 0 {
		reason := "no peers known"
		if len(why) > 0 {
			if len(why) > 8 {
				why = append(why[:8], fmt.Sprintf("and %d more", len(why)-8))
			}
			reason = strings.Join(why, "; ")
		}
		return nil, fmt.Errorf("task type %s: %w (%s)", tt.ID, ErrNoCapablePeer, reason)
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].score != cs[j].score {
			return cs[i].score > cs[j].score
		}
		return cs[i].tie < cs[j].tie
	})
	if max > 0 && len(cs) > max {
		cs = cs[:max]
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.id
	}
	return ids, nil
}
