package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

func benchDB(b *testing.B, noSync bool) *DB {
	b.Helper()
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// BenchmarkAuditAppend measures audit appends per second: one committed
// transaction per entry (Append) with and without fsync, and 100 entries per
// transaction (tx.Append inside one Update). Each op appends 100 entries.
func BenchmarkAuditAppend(b *testing.B) {
	const perOp = 100
	e := AuditEntry{Kind: "auth.failure", Actor: "tok:1a2b3c4d", Subject: "/api/v1/tasks", Detail: "wrong token from 127.0.0.1"}
	for _, c := range []struct {
		name    string
		noSync  bool
		batched bool
	}{
		{"fsync/tx-per-entry", false, false},
		{"nosync/tx-per-entry", true, false},
		{"fsync/100-per-tx", false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			db := benchDB(b, c.noSync)
			for b.Loop() {
				if c.batched {
					if err := db.Update(func(tx *Tx) error {
						for range perOp {
							if _, err := tx.Append(e); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for range perOp {
					if _, err := db.Append(e); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "appends/s")
			if n, err := db.VerifyAudit(); err != nil || n != b.N*perOp {
				b.Fatalf("VerifyAudit = %d, %v", n, err)
			}
		})
	}
}

// BenchmarkAuditAppendParallel measures AppendBatched against Append with
// 64 concurrent writers (API handlers logging auth failures), with fsync.
// Each op is 64 writers appending 10 entries each, so that the figures hold
// with -benchtime 1x (make bench).
func BenchmarkAuditAppendParallel(b *testing.B) {
	const writers, each = 64, 10
	e := AuditEntry{Kind: "auth.failure", Actor: "tok:1a2b3c4d", Detail: "wrong token"}
	for _, batched := range []bool{false, true} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			db := benchDB(b, false)
			for b.Loop() {
				var wg sync.WaitGroup
				for range writers {
					wg.Go(func() {
						for range each {
							var err error
							if batched {
								_, err = db.AppendBatched(e)
							} else {
								_, err = db.Append(e)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*writers*each)/b.Elapsed().Seconds(), "appends/s")
			if n, err := db.VerifyAudit(); err != nil || n != b.N*writers*each {
				b.Fatalf("VerifyAudit = %d, %v", n, err)
			}
		})
	}
}

// BenchmarkPutPeers measures the batch flush of the live peer table: each
// op stores 200 peers, each with a realistic heartbeat, in one transaction.
func BenchmarkPutPeers(b *testing.B) {
	const peers = 200
	now := time.Now()
	ps := benchPeers(peers, now)
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			db := benchDB(b, noSync)
			seq := uint64(1)
			for b.Loop() {
				seq++
				for i := range ps {
					ps[i].Seq, ps[i].LastSeen = seq, ps[i].LastSeen.Add(time.Second)
				}
				if err := db.PutPeers(ps); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*peers)/b.Elapsed().Seconds(), "peers/s")
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/flush")
		})
	}
}

// BenchmarkPeerFlushPerHeartbeat compares, per heartbeat received, the two
// ways of persisting the live peer table of a 100-peer network where a
// node receives 10 heartbeats a second (each from a different peer):
//
//	sync-all   the former flush: every row, every 2 s (SyncPeers of 100 rows
//	           for 20 heartbeats)
//	changed    write-behind: the rows changed, every second (UpdatePeers of
//	           10 rows for 10 heartbeats)
//
// It reports CPU-independent figures (allocations and bytes per heartbeat)
// beside the time; with fsync (nosync=false) the time is mostly the disk's.
func BenchmarkPeerFlushPerHeartbeat(b *testing.B) {
	const peers = 100
	now := time.Now()
	ps := benchPeers(peers, now)
	for _, noSync := range []bool{false, true} {
		for _, mode := range []struct {
			name       string
			rows, hbs  int
			everything bool
		}{{"sync-all", peers, 20, true}, {"changed", 10, 10, false}} {
			b.Run(fmt.Sprintf("%s/nosync=%v", mode.name, noSync), func(b *testing.B) {
				db := benchDB(b, noSync)
				if err := db.PutPeers(ps); err != nil {
					b.Fatal(err)
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				a0, m0 := ms.Mallocs, ms.TotalAlloc
				seq, next := uint64(1), 0
				for b.Loop() {
					seq++
					batch := make([]Peer, 0, mode.rows)
					for range mode.rows {
						p := ps[next%peers]
						next++
						p.Seq, p.LastSeen = seq, p.LastSeen.Add(time.Duration(seq)*time.Second)
						batch = append(batch, p)
					}
					var err error
					if mode.everything {
						err = db.SyncPeers(batch)
					} else {
						err = db.UpdatePeers(batch, nil)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				runtime.ReadMemStats(&ms)
				hbs := float64(b.N * mode.hbs)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/hbs, "ns/hb")
				b.ReportMetric(float64(ms.Mallocs-a0)/hbs, "allocs/hb")
				b.ReportMetric(float64(ms.TotalAlloc-m0)/hbs, "B/hb")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// benchPeers returns n peer rows, each with a realistic heartbeat.
func benchPeers(n int, now time.Time) []Peer {
	ps := make([]Peer, n)
	for i := range ps {
		id := fmt.Sprintf("12D3KooW%044d", i)
		hb, _ := json.Marshal(protocol.Heartbeat{
			NodeID: id, Seq: 1, Time: now.UnixMilli(), PolicyVersion: 1, NodeType: "compute", Region: "eu-west-1",
			Capabilities: protocol.Capabilities{"cpu_cores": 8, "memory_gb": 32, "gpu_available": false},
			Load:         0.25, Health: 1, Version: "0.1.0", TaskTypes: []string{"mimc.chain.v1", "mlp.infer.v1"},
			ListenAddrs: []string{"/ip4/10.0.0.1/tcp/4001", "/ip4/10.0.0.1/udp/4001/quic-v1"}, IntervalMS: 1000,
		})
		ps[i] = Peer{ID: id, FirstSeen: now, LastSeen: now, Status: protocol.StatusOnline, Heartbeat: hb, IntervalMS: 1000, Seq: 1}
	}
	return ps
}
