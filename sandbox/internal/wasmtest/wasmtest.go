// Package wasmtest assembles small WebAssembly modules for the sandbox's
// tests: loops, traps, memory growth, imports, hand-written WASI commands.
// It encodes what it is given and checks nothing; the runtime validates.
package wasmtest

// Value types.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
)

// Export kinds.
const (
	KindFunc   byte = 0x00
	KindMemory byte = 0x02
	KindGlobal byte = 0x03
)

// Type is a function type.
type Type struct{ Params, Results []byte }

// Import is a function import, or a table import when Table (the table's
// type, as Table returns it) is set.
type Import struct {
	Module, Name string
	Type         uint32
	Table        []byte
}

// Func is a defined function: its type index, local declarations (pairs
// of count and value type) and code, final end included.
type Func struct {
	Type   uint32
	Locals []byte
	Code   []byte
}

// Global is a defined global with its init expression (end included).
type Global struct {
	Type    byte
	Mutable bool
	Init    []byte
}

// Export names a function, memory or global.
type Export struct {
	Name  string
	Kind  byte
	Index uint32
}

// Data is an active data segment at a constant offset of memory 0.
type Data struct {
	Offset uint32
	Bytes  []byte
}

// Module is a module to encode. Memory is defined when MemoryMin or
// MemoryMax is set or HasMemory is true.
type Module struct {
	Types     []Type
	Imports   []Import
	Funcs     []Func
	TableMin  uint32   // a funcref table of this size when > 0
	Tables    [][]byte // tables each encoded whole (reference type, limits), after TableMin's
	HasMemory bool
	MemoryMin uint32
	MemoryMax uint32 // 0: no maximum
	Globals   []Global
	Exports   []Export
	Start     *uint32
	Elements  [][]byte // element segments, each encoded whole (flag first)
	Data      []Data
	Passive   [][]byte // passive data segments, after Data (with a data count section)
}

// Bytes encodes the module.
func (m Module) Bytes() []byte {
	out := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	if len(m.Types) > 0 {
		s := U32(uint32(len(m.Types)))
		for _, t := range m.Types {
			s = append(s, 0x60)
			s = append(s, U32(uint32(len(t.Params)))...)
			s = append(s, t.Params...)
			s = append(s, U32(uint32(len(t.Results)))...)
			s = append(s, t.Results...)
		}
		out = section(out, 1, s)
	}
	if len(m.Imports) > 0 {
		s := U32(uint32(len(m.Imports)))
		for _, im := range m.Imports {
			s = append(s, Name(im.Module)...)
			s = append(s, Name(im.Name)...)
			if im.Table != nil {
				s = append(append(s, 0x01), im.Table...)
				continue
			}
			s = append(s, 0x00)
			s = append(s, U32(im.Type)...)
		}
		out = section(out, 2, s)
	}
	if len(m.Funcs) > 0 {
		s := U32(uint32(len(m.Funcs)))
		for _, f := range m.Funcs {
			s = append(s, U32(f.Type)...)
		}
		out = section(out, 3, s)
	}
	if m.TableMin > 0 || len(m.Tables) > 0 {
		var s []byte
		if m.TableMin > 0 {
			s = append([]byte{0x70, 0x00}, U32(m.TableMin)...)
		}
		s = Cat(append([][]byte{U32(uint32(len(m.Tables)) + min(m.TableMin, 1)), s}, m.Tables...)...)
		out = section(out, 4, s)
	}
	if m.HasMemory || m.MemoryMin > 0 || m.MemoryMax > 0 {
		s := []byte{1}
		if m.MemoryMax > 0 {
			s = append(s, 1)
			s = append(s, U32(m.MemoryMin)...)
			s = append(s, U32(m.MemoryMax)...)
		} else {
			s = append(s, 0)
			s = append(s, U32(m.MemoryMin)...)
		}
		out = section(out, 5, s)
	}
	if len(m.Globals) > 0 {
		s := U32(uint32(len(m.Globals)))
		for _, g := range m.Globals {
			mut := byte(0)
			if g.Mutable {
				mut = 1
			}
			s = append(s, g.Type, mut)
			s = append(s, g.Init...)
		}
		out = section(out, 6, s)
	}
	if len(m.Exports) > 0 {
		s := U32(uint32(len(m.Exports)))
		for _, e := range m.Exports {
			s = append(s, Name(e.Name)...)
			s = append(s, e.Kind)
			s = append(s, U32(e.Index)...)
		}
		out = section(out, 7, s)
	}
	if m.Start != nil {
		out = section(out, 8, U32(*m.Start))
	}
	if len(m.Elements) > 0 {
		s := U32(uint32(len(m.Elements)))
		for _, e := range m.Elements {
			s = append(s, e...)
		}
		out = section(out, 9, s)
	}
	if len(m.Passive) > 0 {
		out = section(out, 12, U32(uint32(len(m.Data)+len(m.Passive))))
	}
	if len(m.Funcs) > 0 {
		s := U32(uint32(len(m.Funcs)))
		for _, f := range m.Funcs {
			body := append([]byte(nil), f.Locals...)
			if len(f.Locals) == 0 {
				body = []byte{0}
			}
			body = append(body, f.Code...)
			s = append(s, U32(uint32(len(body)))...)
			s = append(s, body...)
		}
		out = section(out, 10, s)
	}
	if len(m.Data)+len(m.Passive) > 0 {
		s := U32(uint32(len(m.Data) + len(m.Passive)))
		for _, d := range m.Data {
			s = append(s, 0x00, 0x41)
			s = append(s, S64(int64(d.Offset))...)
			s = append(s, 0x0b)
			s = append(s, U32(uint32(len(d.Bytes)))...)
			s = append(s, d.Bytes...)
		}
		for _, d := range m.Passive {
			s = append(s, 0x01)
			s = append(s, U32(uint32(len(d)))...)
			s = append(s, d...)
		}
		out = section(out, 11, s)
	}
	return out
}

func section(out []byte, id byte, content []byte) []byte {
	out = append(out, id)
	out = append(out, U32(uint32(len(content)))...)
	return append(out, content...)
}

// U32 encodes v as unsigned LEB128.
func U32(v uint32) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

// S64 encodes v as signed LEB128.
func S64(v int64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

// Name encodes a name.
func Name(s string) []byte { return append(U32(uint32(len(s))), s...) }

// Cat concatenates code fragments.
func Cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Instructions used by the tests.
func I32Const(v int32) []byte   { return append([]byte{0x41}, S64(int64(v))...) }
func I64Const(v int64) []byte   { return append([]byte{0x42}, S64(v)...) }
func LocalGet(i uint32) []byte  { return append([]byte{0x20}, U32(i)...) }
func LocalSet(i uint32) []byte  { return append([]byte{0x21}, U32(i)...) }
func LocalTee(i uint32) []byte  { return append([]byte{0x22}, U32(i)...) }
func GlobalGet(i uint32) []byte { return append([]byte{0x23}, U32(i)...) }
func GlobalSet(i uint32) []byte { return append([]byte{0x24}, U32(i)...) }
func Call(i uint32) []byte      { return append([]byte{0x10}, U32(i)...) }
func Br(l uint32) []byte        { return append([]byte{0x0c}, U32(l)...) }
func BrIf(l uint32) []byte      { return append([]byte{0x0d}, U32(l)...) }
func RefFunc(i uint32) []byte   { return append([]byte{0xd2}, U32(i)...) }

// Single-byte instructions.
var (
	Unreachable = []byte{0x00}
	Nop         = []byte{0x01}
	Loop        = []byte{0x03, 0x40}
	Block       = []byte{0x02, 0x40}
	If          = []byte{0x04, 0x40}
	Else        = []byte{0x05}
	End         = []byte{0x0b}
	Return      = []byte{0x0f}
	Drop        = []byte{0x1a}
	I32Eqz      = []byte{0x45}
	I32Add      = []byte{0x6a}
	I32Sub      = []byte{0x6b}
	I64Add      = []byte{0x7c}
	I64Sub      = []byte{0x7d}
	I64Eqz      = []byte{0x50}
	MemoryGrow  = []byte{0x40, 0x00}
	MemorySize  = []byte{0x3f, 0x00}
)

// Bulk memory instructions (memory 0).
var (
	MemoryFill = []byte{0xfc, 0x0b, 0x00}
	MemoryCopy = []byte{0xfc, 0x0a, 0x00, 0x00}
)

// MemoryInit is memory.init of data segment seg into memory 0.
func MemoryInit(seg uint32) []byte { return append(append([]byte{0xfc, 0x08}, U32(seg)...), 0x00) }

// Table is the type of a funcref table: min entries, and max if given.
func Table(min uint32, max ...uint32) []byte {
	if len(max) == 0 {
		return append([]byte{0x70, 0x00}, U32(min)...)
	}
	return Cat([]byte{0x70, 0x01}, U32(min), U32(max[0]))
}

// Table instructions on table 0.
var (
	TableGrow = []byte{0xfc, 0x0f, 0x00}
	TableFill = []byte{0xfc, 0x11, 0x00}
	TableSize = []byte{0xfc, 0x10, 0x00}
	RefNull   = []byte{0xd0, 0x70} // ref.null func
)

// I32Store is i32.store with alignment 2 and the given offset.
func I32Store(offset uint32) []byte { return append([]byte{0x36, 0x02}, U32(offset)...) }

// I32Load is i32.load with alignment 2 and the given offset.
func I32Load(offset uint32) []byte { return append([]byte{0x28, 0x02}, U32(offset)...) }
