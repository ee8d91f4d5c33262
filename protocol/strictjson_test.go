package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

// bundleLike has the shape of a proof bundle: the fields whose duplicates
// or case variants made two parsers read two different bundles.
type bundleLike struct {
	Format    string            `json:"format"`
	InputHash string            `json:"input_hash"`
	Results   []Result          `json:"results"`
	Meta      map[string]string `json:"meta,omitempty"`
	Inner     *struct {
		Hash string `json:"hash"`
	} `json:"inner,omitempty"`
	Raw any `json:"raw,omitempty"`
}

// Issue 12, attack 5: encoding/json keeps the last of duplicate keys and
// matches keys case-insensitively, so a bundle with a duplicated
// input_hash, a key spelled FORMAT, or two results keys verified VALID.
// Each is refused, naming the key.
func TestParserDifferentialDuplicateAndCaseVariantKeys(t *testing.T) {
	cases := []struct {
		name, json, key string
	}{
		{"duplicate input_hash", `{"format":"v1","input_hash":"aa","input_hash":"bb"}`, `"input_hash"`},
		{"key spelled FORMAT", `{"FORMAT":"v1","input_hash":"aa"}`, `"FORMAT"`},
		{"two results keys", `{"format":"v1","results":[],"results":[{"task_id":"x"}]}`, `"results"`},
		{"duplicate inside an array element", `{"results":[{"task_id":"x","task_id":"y"}]}`, `"task_id"`},
		{"case variant inside an array element", `{"results":[{"Task_ID":"x"}]}`, `"Task_ID"`},
		{"case variant in a nested struct", `{"inner":{"HASH":"x"}}`, `"HASH"`},
		{"case variant two levels down", `{"results":[{"stats":{"Wall_MS":1}}]}`, `"Wall_MS"`},
		{"duplicate map key", `{"meta":{"a":"1","a":"2"}}`, `"a"`},
		{"duplicate inside an untyped value", `{"raw":[{"k":1,"k":2}]}`, `"k"`},
		{"escaped duplicate", `{"format":"v1","form\u0061t":"v2"}`, `"format"`},
		{"unicode case fold (long s)", `{"format":"v1","input_haſh":"aa"}`, `"input_haſh"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bundleLike
			err := DecodeStrict([]byte(c.json), 1<<10, &b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeStrict(%s) = %v, want ErrMalformed", c.json, err)
			}
			if !strings.Contains(err.Error(), c.key) {
				t.Errorf("error %q does not name the key %s", err, c.key)
			}
		})
	}
	var b bundleLike
	ok := `{"format":"v1","input_hash":"aa","results":[{"task_id":"x","stats":{"wall_ms":1}}],"meta":{"a":"1","A":"2"},"inner":{"hash":"h"},"raw":{"k":1,"K":[1,{"x":2}]}}`
	if err := DecodeStrict([]byte(ok), 1<<10, &b); err != nil {
		t.Fatalf("a well-formed document refused: %v", err)
	}
	if b.Results[0].TaskID != "x" || b.Meta["A"] != "2" || b.Inner.Hash != "h" {
		t.Fatalf("decoded %+v", b)
	}
}

// The heartbeat decoder, a caller of DecodeStrict, refuses the same.
func TestDecodeHeartbeatRefusesDuplicateAndCaseVariantKeys(t *testing.T) {
	base := `"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1,"capabilities":{"cpu_cores":2},"policy_version":1,"node_type":"compute","load":0,"health":1,"version":"x","interval_ms":1000`
	if _, err := DecodeHeartbeat([]byte("{" + base + "}")); err != nil {
		t.Fatalf("valid heartbeat refused: %v", err)
	}
	for _, extra := range []string{`,"seq":2`, `,"SEQ":2`, `,"capabilities":{"cpu_cores":4}`} {
		if _, err := DecodeHeartbeat([]byte("{" + base + extra + "}")); !errors.Is(err, ErrMalformed) {
			t.Errorf("heartbeat with %s: %v, want ErrMalformed", extra, err)
		}
	}
	dupCap := strings.Replace(base, `{"cpu_cores":2}`, `{"cpu_cores":2,"cpu_cores":256}`, 1)
	if _, err := DecodeHeartbeat([]byte("{" + dupCap + "}")); !errors.Is(err, ErrMalformed) {
		t.Errorf("heartbeat with a duplicate capability: %v, want ErrMalformed", err)
	}
}

// The pre-pass is linear and needs no Go stack per nesting level: deep
// nesting is left to encoding/json's own depth limit.
func TestDecodeStrictDeepNesting(t *testing.T) {
	deep := strings.Repeat(`{"raw":`, 20000) + "1" + strings.Repeat("}", 20000)
	var b bundleLike
	if err := DecodeStrict([]byte(deep), 1<<20, &b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("deep nesting: %v, want ErrMalformed", err)
	}
	wide := "[" + strings.Repeat(`{"k":1},`, 50000) + `{"k":1}]`
	var a []map[string]int
	if err := DecodeStrict([]byte(wide), 1<<20, &a); err != nil || len(a) != 50001 {
		t.Fatalf("wide array: %d, %v", len(a), err)
	}
}

// The key scan allocates nothing for a heartbeat (issue 15: it was most
// of the validator's 432 allocations), whichever way it decodes.
func TestCheckKeysAllocatesNothing(t *testing.T) {
	_, me := testkeys.New(t)
	h := validHeartbeat(me, 1, time.Now())
	h.TaskTypes, h.ListenAddrs = []string{"wasm", "mimc-chain"}, []string{"/ip4/203.0.113.7/tcp/4001"}
	hb, _ := h.Encode()
	newer := addFields(t, hb, `"nat":{"addrs":["x"],"k":{"k":1}}`)
	for _, data := range [][]byte{hb, newer} {
		if n := testing.AllocsPerRun(100, func() {
			if err := checkKeys(data, reflect.TypeFor[*Heartbeat]()); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("checkKeys of %d bytes: %v allocations, want 0", len(data), n)
		}
	}
}

// Nesting: as deep as encoding/json goes is followed; one level more is
// refused by the scanner itself, as the decoder would refuse it.
func TestCheckKeysDepthBound(t *testing.T) {
	nest := func(depth int, inner string) []byte {
		return []byte(strings.Repeat(`{"k":`, depth-1) + inner + strings.Repeat("}", depth-1))
	}
	var v any
	if err := DecodeStrict(nest(maxKeyDepth, `{"a":1}`), 1<<20, &v); err != nil {
		t.Fatalf("nesting of %d: %v", maxKeyDepth, err)
	}
	if err := DecodeStrict(nest(maxKeyDepth, `{"a":1,"a":2}`), 1<<20, &v); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `duplicate key "a"`) {
		t.Fatalf("duplicate at a nesting of %d: %v", maxKeyDepth, err)
	}
	deeper := nest(maxKeyDepth+1, `{}`)
	if err := checkKeys(deeper, reflect.TypeFor[*any]()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nesting of %d: checkKeys says %v, want ErrMalformed", maxKeyDepth+1, err)
	}
	if err := decodeJSONRef(deeper, 1<<20, &v, false); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nesting of %d: the decoder accepts it (%v): the bound no longer matches encoding/json's", maxKeyDepth+1, err)
	}
}

// Only JSON's own whitespace may follow a document: a vertical tab, a
// next-line (U+0085) or a no-break space is trailing data, as
// encoding/json's Unmarshal says.
func TestTrailingBytesAreJSONWhitespaceOnly(t *testing.T) {
	for _, tail := range []string{"\v", "\f", "\u0085", "\u00a0", "\ufeff"} {
		var v map[string]any
		if err := DecodeWire([]byte(`{}`+tail), 64, &v); !errors.Is(err, ErrMalformed) {
			t.Errorf("{} followed by %q: %v, want %v", tail, err, ErrMalformed)
		}
		if err := json.Unmarshal([]byte(`{}`+tail), &v); err == nil {
			t.Errorf("encoding/json accepts {} followed by %q: the test's premise is wrong", tail)
		}
	}
	var v map[string]any
	if err := DecodeWire([]byte(" {} \t\r\n"), 64, &v); err != nil {
		t.Fatalf("JSON whitespace around a document: %v", err)
	}
}
