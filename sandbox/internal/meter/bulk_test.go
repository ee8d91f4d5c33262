package meter

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// bulkLoop is run(n, k i32), which k times fills n bytes, copies them,
// initializes 3 bytes from a passive data segment and fills, copies and
// initializes 1024, 512 and 2 table entries (8 bytes each), counting the
// turns in its declared local, which it then stores at 131000. Its entry
// region costs 5 (loop, i32.const, local.get, i32.store, end), its loop
// 34, and its bulk instructions move 2n + 3 + 8·1538 bytes a turn.
func bulkLoop() wt.Module {
	return wt.Module{
		Types:     []wt.Type{{Params: []byte{wt.I32, wt.I32}}},
		TableMin:  1024,
		MemoryMin: 2,
		Elements:  [][]byte{{0x01, 0x00, 0x02, 0x00, 0x00}}, // passive: func 0 twice
		Passive:   [][]byte{[]byte("abcdefgh")},
		Funcs: []wt.Func{{
			Locals: []byte{1, 1, wt.I32}, // $2: turns
			Code: wt.Cat(
				wt.Loop,
				wt.I32Const(0), wt.I32Const(7), wt.LocalGet(0), wt.MemoryFill,
				wt.I32Const(65536), wt.I32Const(0), wt.LocalGet(0), wt.MemoryCopy,
				wt.I32Const(16), wt.I32Const(1), wt.I32Const(3), wt.MemoryInit(0),
				wt.I32Const(0), []byte{0xd0, 0x70}, wt.I32Const(1024), []byte{0xfc, 0x11, 0x00}, // table.fill
				wt.I32Const(512), wt.I32Const(0), wt.I32Const(512), []byte{0xfc, 0x0e, 0x00, 0x00}, // table.copy
				wt.I32Const(100), wt.I32Const(0), wt.I32Const(2), []byte{0xfc, 0x0c, 0x00, 0x00}, // table.init
				wt.LocalGet(2), wt.I32Const(1), wt.I32Add, wt.LocalSet(2),
				wt.LocalGet(1), wt.I32Const(1), wt.I32Sub, wt.LocalTee(1), wt.BrIf(0),
				wt.End,
				wt.I32Const(131000), wt.LocalGet(2), wt.I32Store(0),
				wt.End,
			),
		}},
		Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc}},
	}
}

// bulkRefuels is how many times a module that moves these bytes, in this
// order, calls refuel for them.
func bulkRefuels(moves []uint64, turns int) int {
	calls, moved := 0, uint64(0)
	for range turns {
		for _, n := range moves {
			if moved += n + BulkOpBytes; moved > BulkBytesPerRefuel {
				moved, calls = 0, calls+1
			}
		}
	}
	return calls
}

// TestBulkChargesBytesNotFuel: the bulk instructions call refuel every
// BulkBytesPerRefuel bytes moved, exactly as counted from their lengths
// (table entries at 8 bytes) and BulkOpBytes each, while the fuel spent is what the
// instructions cost, whatever the bytes (the same with n = 0 as with
// megabytes), and the module computes what it computes unmetered.
func TestBulkChargesBytesNotFuel(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range engines() {
		t.Run(name, func(t *testing.T) {
			r := newRuntime(t, cfg)
			defer r.Close(ctx)
			wasm := bulkLoop().Bytes()
			res, err := Instrument(wasm, Bounds{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Bulk != 6 || res.MaxLocals != 1 {
				t.Fatalf("%d bulk instructions, %d locals; want 6, 1 (the module's own)", res.Bulk, res.MaxLocals)
			}
			const turns = 300
			for _, n := range []uint32{0, 1000, 60000} {
				plain, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := plain.ExportedFunction("run").Call(ctx, uint64(n), turns); err != nil {
					t.Fatal(err)
				}
				want, _ := plain.Memory().Read(0, plain.Memory().Size())
				mod, g := instantiate(t, r, wasm, 1<<40)
				calls := 0
				cctx := context.WithValue(context.WithValue(context.WithValue(ctx,
					budgetKey{}, int64(1<<40)), chunkKey{}, int64(1<<40)), refuelsKey{}, &calls)
				if _, err := mod.ExportedFunction("run").Call(cctx, uint64(n), turns); err != nil {
					t.Fatalf("n=%d: %v", n, err)
				}
				if used, want := g.spent(), int64(5+34*turns); used != want {
					t.Errorf("n=%d: used %d fuel, want %d", n, used, want)
				}
				moves := []uint64{uint64(n), uint64(n), 3, 8 * 1024, 8 * 512, 8 * 2}
				if want := bulkRefuels(moves, turns); calls != want {
					t.Errorf("n=%d: %d calls of refuel, want %d", n, calls, want)
				}
				got, _ := mod.Memory().Read(0, mod.Memory().Size())
				if !bytes.Equal(got, want) {
					t.Errorf("n=%d: memory differs from the unmetered module's", n)
				}
				if v, _ := mod.Memory().ReadUint32Le(131000); v != turns {
					t.Errorf("n=%d: the declared local counted %d turns, want %d", n, v, turns)
				}
				plain.Close(ctx)
				mod.Close(ctx)
			}
			// Out of fuel: the same fuel spent, however many bytes moved
			// and refuels they caused, with the fuel granted in chunks.
			var spent []int64
			for _, n := range []uint32{0, 60000} {
				mod, g := instantiate(t, r, wasm, 1000)
				cctx := context.WithValue(context.WithValue(ctx, budgetKey{}, int64(5+34*100-1)), chunkKey{}, int64(1000))
				if _, err := mod.ExportedFunction("run").Call(cctx, uint64(n), turns); !errors.Is(err, errOutOfFuel) {
					t.Fatalf("n=%d: err = %v, want %v", n, err, errOutOfFuel)
				}
				spent = append(spent, g.spent())
				mod.Close(ctx)
			}
			if spent[0] != spent[1] {
				t.Errorf("fuel spent at exhaustion: %d without bytes, %d with", spent[0], spent[1])
			}
		})
	}
}
