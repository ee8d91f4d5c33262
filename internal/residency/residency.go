// Package residency owns what a long-running proofmesh process gives back to
// the kernel once it has started: the pages of its own executable that only
// start-up touched, the Go heap that start-up freed, the headroom the
// collector leaves above a small live heap (GCPolicy), and the cores it
// does not need while it only gossips (ProcsPolicy: one P then, every
// core while it computes or is busy).
//
// Every one of the few hundred packages linked into the binary runs an init
// function before main, and the kernel maps each page touched then together
// with its neighbours (fault-around, 64 KiB at a time), so an idle node keeps
// about 30 MB of the binary resident that it never touches again. Those
// pages are clean copies of the executable file: paging them out costs
// nothing but a read from the file if they are needed again, and the pages
// the node does use come back on their own.
package residency

import (
	"errors"
	"fmt"
)

// ErrUnsupported reports a system that cannot do what was asked: page out
// a range on request (not Linux, or a Linux kernel older than 5.4, which
// has no MADV_PAGEOUT), or read the process's own CPU time (not Linux).
var ErrUnsupported = errors.New("residency: not supported on this system")

// Released is what ReleaseStartupPages asked the kernel to page out.
type Released struct {
	Mappings int    // read-only mappings of the executable advised
	Bytes    uint64 // their size (not all of it resident)
}

func (r Released) String() string {
	return fmt.Sprintf("%d mappings, %d KiB", r.Mappings, r.Bytes/1024)
}
