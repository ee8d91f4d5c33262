package mesh

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fuzzBlobMesh is a mesh on loopback TCP for fuzzing a stream protocol
// against real hosts, with no heartbeat and no DHT.
func fuzzBlobMesh(f *testing.F) *Mesh {
	f.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NetworkID = "fuzznet"
	cfg.Key = key
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.DHT = false
	cfg.Colocation = true
	cfg.LeaveFlush = 10 * time.Millisecond
	m, err := New(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = m.Close() })
	return m
}

// FuzzFetchBlobAnswer has a peer answer a blob request with arbitrary
// bytes and fetches through the real FetchBlob. The blob asked for is the
// one the answer's header and body describe, so that well-formed answers
// are reached. FetchBlob accepts exactly the well-formed answers (status
// OK, a length within maxBytes, that many bytes of the hash asked for),
// returns the bytes whose hash was asked, and refuses the others with the
// error their status or length calls for.
func FuzzFetchBlobAnswer(f *testing.F) {
	client, server := fuzzBlobMesh(f), fuzzBlobMesh(f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Host().Addrs()}); err != nil {
		f.Fatal(err)
	}
	var answer atomic.Pointer[[]byte]
	server.Host().SetStreamHandler(blobProtocolID("fuzznet"), func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		req := make([]byte, 65)
		if _, err := io.ReadFull(s, req); err != nil {
			_ = s.Reset()
			return
		}
		_, _ = s.Write(*answer.Load())
	})
	ok := func(body []byte) []byte {
		hdr := make([]byte, 9)
		binary.BigEndian.PutUint64(hdr[1:], uint64(len(body)))
		return append(hdr, body...)
	}
	f.Add(ok([]byte("module bytes")), uint16(100))
	f.Add(ok(nil), uint16(0))
	f.Add(ok(make([]byte, 200)), uint16(100))
	f.Add([]byte{blobStatusNotFound}, uint16(1))
	f.Add([]byte{blobStatusTooLarge}, uint16(1))
	f.Add([]byte{blobStatusBusy}, uint16(1))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'}, uint16(10))
	f.Fuzz(func(t *testing.T, ans []byte, max16 uint16) {
		maxBytes := int64(max16) + 1
		answer.Store(&ans)
		// The blob the answer describes: its body, cut at the length its
		// header declares.
		var declared uint64
		body := []byte("no body")
		if len(ans) >= 9 {
			declared = binary.BigEndian.Uint64(ans[1:9])
			body = ans[9:]
			if uint64(len(body)) > declared {
				body = body[:declared]
			}
		}
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := client.FetchBlob(fctx, server.ID(), hash, maxBytes)
		wellFormed := len(ans) >= 9 && ans[0] == blobStatusOK && declared <= uint64(maxBytes) && uint64(len(ans)-9) >= declared
		if err == nil {
			if !wellFormed {
				t.Fatalf("answer %x (max %d) accepted as %x", ans, maxBytes, got)
			}
			if !bytes.Equal(got, body) || int64(len(got)) > maxBytes {
				t.Fatalf("answer %x fetched as %x", ans, got)
			}
			return
		}
		if wellFormed {
			t.Fatalf("well-formed answer %x (max %d) refused: %v", ans, maxBytes, err)
		}
		var want error
		switch {
		case len(ans) == 0:
		case ans[0] == blobStatusNotFound:
			want = ErrBlobNotFound
		case ans[0] == blobStatusTooLarge:
			want = ErrBlobTooLarge
		case ans[0] == blobStatusBusy:
			want = ErrBlobBusy
		case ans[0] == blobStatusOK && len(ans) >= 9 && declared > uint64(maxBytes):
			want = ErrBlobTooLarge
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("answer %x (max %d): %v, want %v", ans, maxBytes, err, want)
		}
	})
}
