package mesh

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
)

// nopTracer is a gossipsub RawTracer that does nothing: tests embed it and
// override the events they watch.
type nopTracer struct{}

var _ pubsub.RawTracer = nopTracer{}

func (nopTracer) AddPeer(peer.ID, libp2pproto.ID)                      {}
func (nopTracer) RemovePeer(peer.ID)                                   {}
func (nopTracer) OnNewOutboundStream(peer.ID, libp2pproto.ID)          {}
func (nopTracer) OnClosedOutboundStream(peer.ID)                       {}
func (nopTracer) Join(string)                                          {}
func (nopTracer) Leave(string)                                         {}
func (nopTracer) Graft(peer.ID, string)                                {}
func (nopTracer) Prune(peer.ID, string)                                {}
func (nopTracer) ValidateMessage(*pubsub.Message)                      {}
func (nopTracer) DeliverMessage(*pubsub.Message)                       {}
func (nopTracer) RejectMessage(*pubsub.Message, string)                {}
func (nopTracer) DuplicateMessage(*pubsub.Message)                     {}
func (nopTracer) ThrottlePeer(peer.ID)                                 {}
func (nopTracer) RecvRPC(*pubsub.RPC)                                  {}
func (nopTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (nopTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (nopTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (nopTracer) UndeliverableMessage(*pubsub.Message)                 {}
