package mesh

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/protocol"
)

// FuzzServeBlobRequest sends arbitrary request bytes to a real blob
// server (acceptKeyed, then serveBlob): it serves the blob only for its
// exact 65-byte request, answers any other complete request with
// statusBadRequest, and never answers with more than the blob it holds.
func FuzzServeBlobRequest(f *testing.F) {
	blob := []byte("module bytes")
	hash := protocol.HashHex(blob)
	client, server := fuzzBlobMesh(f), fuzzBlobMesh(f)
	server.cfg.Blob = func(h string) ([]byte, bool) { return blob, h == hash }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Host().Addrs()}); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(hash + "\n"))
	f.Add([]byte(strings.ToUpper(hash) + "\n"))
	f.Add([]byte(hash + "\r"))
	f.Add([]byte(hash + "\nextra"))
	f.Add([]byte(hash[:10]))
	f.Add([]byte(protocol.HashHex(nil) + "\n"))
	f.Fuzz(func(t *testing.T, req []byte) {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := client.Host().NewStream(sctx, server.ID(), blobProtocolID("fuzznet"))
		if err != nil {
			t.Skipf("stream: %v", err) // the server's resource manager, not the decoder
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = s.Write(req)
		_ = s.CloseWrite()
		got, _ := io.ReadAll(io.LimitReader(s, int64(9+len(blob)+1)))
		complete := len(req) >= 65
		exact := complete && string(req[:65]) == hash+"\n"
		switch {
		case exact:
			if len(got) != 9+len(blob) || got[0] != blobStatusOK || !bytes.Equal(got[9:], blob) {
				t.Fatalf("request %q answered %x", req, got)
			}
		case complete && validHash(string(req[:64])) && req[64] == '\n':
			if !bytes.Equal(got, []byte{blobStatusNotFound}) {
				t.Fatalf("request for another blob %q answered %x", req, got)
			}
		case complete:
			if !bytes.Equal(got, []byte{statusBadRequest}) {
				t.Fatalf("malformed request %q answered %x", req, got)
			}
		default:
			if len(got) != 0 {
				t.Fatalf("short request %q answered %x", req, got)
			}
		}
	})
}
