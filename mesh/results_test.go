package mesh

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

func TestResultsFetch(t *testing.T) {
	id := protocol.HashHex([]byte("a task"))
	held := [][]byte{[]byte("envelope of a"), []byte("envelope of b")}
	server := newTestMesh(t, "testnet", func(c *Config) {
		c.Self = nil
		c.DHT = false
		c.Results = func(task string) [][]byte {
			if task == id {
				return held
			}
			return nil
		}
	})
	client := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	connect(t, client, server)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := client.FetchResults(ctx, server.ID(), id)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], held[0]) || !bytes.Equal(got[1], held[1]) {
		t.Fatalf("fetch = %q, %v", got, err)
	}
	if _, err := client.FetchResults(ctx, server.ID(), protocol.HashHex([]byte("unknown"))); !errors.Is(err, ErrResultsNotFound) {
		t.Fatalf("unknown task: err = %v, want %v", err, ErrResultsNotFound)
	}
	if _, err := client.FetchResults(ctx, server.ID(), strings.ToUpper(id)); err == nil {
		t.Fatal("a task id that is not lower-case hex was sent")
	}
	// A request that is not a task id gets a refusal, not a hang.
	s, err := client.Host().NewStream(ctx, server.ID(), server.resultsProtocol())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte(strings.Repeat("z", 64) + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	if _, err := DecodeResults(s); err == nil || !strings.Contains(err.Error(), "status 3") {
		t.Fatalf("bad request answered %v, want status 3", err)
	}
	_ = s.Close()
}

// An answer carries at most MaxSyncResults envelopes of at most
// MaxSyncEnvelope bytes, MaxSyncBytes in all: the server leaves out what
// is beyond, and the fetcher refuses an answer that goes past any bound.
func TestResultsAnswerBounds(t *testing.T) {
	var many [][]byte
	for range MaxSyncResults + 5 {
		many = append(many, []byte("e"))
	}
	if got, err := DecodeResults(bytes.NewReader(EncodeResults(many))); err != nil || len(got) != MaxSyncResults {
		t.Fatalf("%d envelopes encoded: decoded %d, %v; want %d", len(many), len(got), err, MaxSyncResults)
	}
	huge := [][]byte{make([]byte, MaxSyncEnvelope+1), []byte("small")}
	if got, err := DecodeResults(bytes.NewReader(EncodeResults(huge))); err != nil || len(got) != 1 || string(got[0]) != "small" {
		t.Fatalf("oversized envelope not left out: %d, %v", len(got), err)
	}
	fit := MaxSyncBytes / MaxSyncEnvelope // envelopes of the largest size an answer holds
	var full [][]byte
	for range fit + 2 {
		full = append(full, make([]byte, MaxSyncEnvelope))
	}
	if got, err := DecodeResults(bytes.NewReader(EncodeResults(full))); err != nil || len(got) != fit {
		t.Fatalf("answer over %d bytes: decoded %d, %v", MaxSyncBytes, len(got), err)
	}

	frame := func(count int, lens ...int) []byte {
		b := []byte{resultsStatusOK, byte(count)}
		for _, n := range lens {
			var l [4]byte
			binary.BigEndian.PutUint32(l[:], uint32(n))
			b = append(b, l[:]...)
			b = append(b, make([]byte, min(n, 64))...)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "status"},
		{"busy", []byte{resultsStatusBusy}, "busy"},
		{"unknown status", []byte{9}, "status 9"},
		{"zero results", frame(0), "0 results"},
		{"too many results", frame(MaxSyncResults + 1), "17 results"},
		{"empty envelope", frame(1, 0), "0 bytes"},
		{"envelope over the bound", frame(1, MaxSyncEnvelope+1), "bytes (at most"},
		{"truncated envelope", frame(1, 100), "result 0"},
		{"missing envelope", frame(2, 10), "result 1"},
		{"trailing bytes", append(frame(1, 3), 'x'), "bytes after"},
	} {
		if _, err := DecodeResults(bytes.NewReader(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// The total bound holds against envelopes that each pass.
	b := []byte{resultsStatusOK, byte(fit + 1)}
	for range fit + 1 {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], MaxSyncEnvelope)
		b = append(b, l[:]...)
		b = append(b, make([]byte, MaxSyncEnvelope)...)
	}
	if _, err := DecodeResults(io.MultiReader(bytes.NewReader(b))); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("result %d", fit)) {
		t.Fatalf("answer of %d envelopes of %d bytes: err = %v", fit+1, MaxSyncEnvelope, err)
	}
}

func FuzzDecodeResults(f *testing.F) {
	f.Add(EncodeResults([][]byte{[]byte("a"), []byte("bc")}))
	f.Add([]byte{resultsStatusNotFound})
	f.Add([]byte{resultsStatusOK, 1, 0, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		envs, err := DecodeResults(bytes.NewReader(data))
		if err != nil {
			return
		}
		total := 0
		for _, e := range envs {
			if len(e) == 0 || len(e) > MaxSyncEnvelope {
				t.Fatalf("envelope of %d bytes decoded", len(e))
			}
			total += len(e)
		}
		if len(envs) == 0 || len(envs) > MaxSyncResults || total > MaxSyncBytes {
			t.Fatalf("%d envelopes, %d bytes decoded", len(envs), total)
		}
		if !bytes.Equal(EncodeResults(envs), data) {
			t.Fatalf("decoded answer does not re-encode to its bytes")
		}
	})
}

// A node serves resultsServers results requests at once, in slots of
// their own: peers holding every one of them get the next asker refused
// at once, not left hanging, and leave blob fetches (the modules a taking-over
// candidate needs) untouched.
func TestResultsRequestsBoundedApartFromBlobs(t *testing.T) {
	id := protocol.HashHex([]byte("a task"))
	blob := []byte("module")
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	var held atomic.Int32
	server := newTestMesh(t, "testnet", func(c *Config) {
		c.Self = nil
		c.DHT = false
		c.Results = func(string) [][]byte {
			held.Add(1)
			<-release
			return [][]byte{[]byte("envelope")}
		}
		c.Blob = func(h string) ([]byte, bool) { return blob, h == protocol.HashHex(blob) }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Four peers, four streams each (the resource manager's per-peer
	// bound): every slot held.
	for range resultsServers / blobPeerStreams {
		hog := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
		connect(t, hog, server)
		for range blobPeerStreams {
			s, err := hog.Host().NewStream(ctx, server.ID(), server.resultsProtocol())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Reset() })
			if _, err := s.Write([]byte(id + "\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for held.Load() < resultsServers {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d results requests held", held.Load(), resultsServers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	asker := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	connect(t, asker, server)
	// Refused at once: a busy answer, or the resource manager's reset
	// (its protocol limit equals resultsServers, so it usually acts first).
	if _, err := asker.FetchResults(ctx, server.ID(), id); err == nil || ctx.Err() != nil {
		t.Fatalf("results request beyond the %d served at once: err = %v, want a refusal", resultsServers, err)
	}
	if got, err := asker.FetchBlob(ctx, server.ID(), protocol.HashHex(blob), 0); err != nil || string(got) != string(blob) {
		t.Fatalf("blob fetch while every results slot is held: %q, %v", got, err)
	}
	once.Do(func() { close(release) })
	for {
		got, err := asker.FetchResults(ctx, server.ID(), id)
		if err == nil && len(got) == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("results not served once the slots came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
