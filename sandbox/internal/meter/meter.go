// Package meter adds a deterministic execution budget (fuel) to a
// WebAssembly module by rewriting its binary, because wazero has none.
//
// Instrument parses the module's sections, appends mutable i64 globals,
// the fuel spent (exported as FuelUsedExport), the budget
// (FuelLimitExport) and the bytes moved (below), imports a host function RefuelModule.RefuelName of
// type [] -> [] ($refuel), and, at every function entry and every loop
// header, injects
//
//	global.get $used; i64.const cost; i64.add; global.set $used
//	global.get $used; global.get $limit; i64.gt_s; if; call $refuel; end
//
// where cost is the number of instructions of the region that the check
// governs (the function body outside its loops, or a loop body outside its
// inner loops). Every back edge of WebAssembly goes to a loop header, so a
// module cannot run more than a bounded number of instructions between two
// checks. When a check takes the fuel spent above the budget global, the
// module calls $refuel, which either ends the run (a trap: the host
// panics) or raises the budget global above the fuel spent and returns.
// A host that ends the run when the fuel spent passes its real budget N
// stops any module, on every node after exactly the same work, however it
// hands out N.
//
// The call is why the budget global need not hold the whole budget: the
// host sets it to a chunk and refuel grants the next one. Compiled guest
// code offers the Go runtime no safepoint, so a stop of the world (a
// garbage collection) waits for it to call into Go; with a chunk of C
// fuel, even a loop that never calls the host calls refuel every C
// instructions or so.
//
// Fuel counts instructions, not their work: memory.copy, memory.fill
// and memory.init (and table.copy, table.fill and table.init) cost one
// fuel whatever their length, and each runs as one memmove in compiled
// code, without a safepoint, so a loop of them would reach refuel only
// every C of those instructions: megabytes each, seconds or minutes
// between two checks. So a third mutable i64 global counts the bytes they
// move, apart from fuel, and before each of them Instrument injects
//
//	local.tee $scratch; i64.extend_i32_u; [i64.const 3; i64.shl]
//	global.get $moved; i64.add; i64.const BulkOpBytes; i64.add; global.set $moved
//	global.get $moved; i64.const BulkBytesPerRefuel; i64.gt_s
//	if; i64.const 0; global.set $moved; call $refuel; end
//	local.get $scratch
//
// which charges the instruction's length operand (the i32 on top of the
// stack, kept in $scratch, an i32 local appended after the locals of a
// function that has bulk instructions; table lengths count 8 bytes an
// entry, hence the shift), plus BulkOpBytes for the instruction's own
// cost, and, past BulkBytesPerRefuel bytes, resets the count and calls
// $refuel. The refuel finds the fuel spent within its
// budget global (the fuel checks keep it there), so it grants a chunk
// or ends a stopped run, as at a fuel check; it changes no fuel figure:
// the injected code is not counted, and the fuel of every instruction is
// what it was. A host that ends the run only when the fuel spent passes
// its budget still stops every module after exactly the same work. What
// remains between two safepoints is at most BulkBytesPerRefuel bytes plus
// one instruction's length, which the memory (or table) size bounds: one
// instruction cannot be split without changing its semantics. The meter's
// globals are not exported beyond the two of fuel: the module resets the
// count itself.
//
// The budget lives apart from the counter so that the host can stop a run
// from another goroutine by lowering the budget (to -1): the guest only
// reads that global, so the store cannot be lost, and its next check
// calls refuel, which sees the stop. (A single counter that the host
// overwrites loses the race against the guest's own read-modify-write of
// it: measured, a stop then took 3-30 ms to land.)
//
// The import comes after the module's own imported functions, so every
// function the module defines moves up one index: Instrument renumbers
// each reference to a function (call and ref.func in code, ref.func in the
// initializers of globals and element segments, the index vectors of
// element segments, function exports and the start function) and
// recomputes the sizes of the bodies and sections whose LEB128 indices
// grow. call_indirect names types and tables, not functions, and stays.
// An index past the last function is refused (ErrMalformed), since once
// renumbered it could name a real one; so is a module that imports the
// meter's own name itself (ErrUnsupported). Custom sections, the name
// section among them, are dropped.
//
// Tables are bounded too: wazero keeps a table on the host's heap, 8
// bytes an entry, outside any memory limit, so table.grow on a table
// declared without a maximum allocated whatever the module asked (3.2 GB
// for 400 million entries). Instrument rewrites the limits of every table
// the module defines so that its maximum is the smaller of its declared
// maximum and Bounds.MaxTableEntries (a table without one gets the
// bound): table.grow past it returns -1, which is deterministic, and a
// bulk table instruction moves at most 8·MaxTableEntries bytes. A table
// whose minimum is above the bound, or more than Bounds.MaxTables tables,
// is refused (ErrBound). Imported tables count, and their minimum is
// bounded, but their limits are left as they are: the host that provides
// a table bounds it. Limits flags other than 0 (a minimum) and 1 (a
// minimum and a maximum), those of shared memories and of 64-bit
// memories and tables, are beyond WebAssembly 2.0 (ErrUnsupported).
//
// The decoder understands every instruction of WebAssembly 2.0 (the MVP,
// sign extension, non-trapping float-to-int, bulk memory, reference types,
// multi-value, fixed-width SIMD): what wazero runs with its default
// features. Anything else (threads, tail calls, exceptions, GC, multiple
// memories) is refused with ErrUnsupported, and any byte it cannot account
// for with ErrMalformed: a module is rewritten exactly or not at all.
//
// A start function would run while the module is instantiated, before the
// host can set the budget; Instrument removes the start section and exports
// the function as StartExport instead, for the host to call first.
package meter

import (
	"errors"
	"fmt"
)

// Errors of Instrument. All mean the module cannot run metered.
var (
	// ErrMalformed: the bytes are not a well-formed WebAssembly binary.
	ErrMalformed = errors.New("malformed wasm module")
	// ErrUnsupported: a well-formed module that uses something the meter
	// does not handle (a proposal beyond WebAssembly 2.0, a reserved name).
	ErrUnsupported = errors.New("unsupported wasm module")
	// ErrBound: the module passes one of the Bounds; the message names
	// the bound, the module's value and the limit.
	ErrBound = errors.New("module out of bounds")
)

// Bounds limit the structure of a module, so that the work of compiling
// it is bounded before anything compiles it: a compiler's cost grows with
// these figures, some faster than linearly (wazero's with the nesting of
// blocks). Instrument measures them in the pass that decodes every
// instruction anyway, so checking them costs time linear in the module's
// size. A zero field is no bound.
type Bounds struct {
	// MaxNesting bounds the depth of blocks, loops and ifs open at once
	// in one function body (the body itself is depth 0).
	MaxNesting int
	// MaxFunctions bounds the functions of the module, imported and
	// defined.
	MaxFunctions int
	// MaxLocals bounds the locals one function declares, parameters not
	// included; MaxLocals (the constant) applies in any case.
	MaxLocals int
	// MaxTotalLocals bounds the locals all functions declare together,
	// their parameters included:
	// wazero keeps about 8 bytes of Go heap for each in the compiled
	// module, outside any memory limit, and MaxLocals in each of
	// MaxFunctions functions is billions (500 functions of 50,000
	// locals, a module of 4 KB, grew the heap by 193 MiB).
	MaxTotalLocals int
	// MaxBodyBytes bounds the size of one function body, in bytes.
	MaxBodyBytes int
	// MaxInstructions bounds the instructions of all function bodies
	// together (each end, else and block opener counts as one).
	MaxInstructions int
	// MaxControlWeight bounds the sum, over the functions, of the square
	// of each one's control instructions (block, loop, if, else, br,
	// br_if, br_table): wazero's compile time grows with the square of a
	// function's basic blocks, whatever their nesting.
	MaxControlWeight int
	// MaxLabelWeight bounds the sum, over the functions, of the square
	// of the labels of each one's br_tables: wazero's compile time and
	// memory grow with it too (one br_table of 80,000 labels, a module
	// of 80 KB, took 4 s and 181 MiB to compile; 20,000 labels 0.37 s
	// and 44 MiB), and a br_table counts one control instruction,
	// whatever its labels.
	MaxLabelWeight int
	// MaxTables bounds the tables of the module, imported and defined:
	// each costs up to 8·MaxTableEntries bytes of the host's memory.
	MaxTables int
	// MaxTableEntries bounds the size of every table, in entries (8
	// bytes each on the host's heap, where wazero keeps tables, outside
	// any memory limit): Instrument sets the maximum of each defined
	// table to the smaller of its declared maximum and this bound, so
	// that table.grow past it returns -1 (on every node alike) instead
	// of allocating, and refuses a table whose minimum is above it.
	MaxTableEntries int
	// MaxElements bounds the element segments and their entries
	// together (each segment counts one, and each entry one): wazero
	// keeps each entry as a constant expression of its own in the
	// compiled module (tens of bytes, for one byte of the module), 8
	// bytes of each passive one in every instance, and as much for each
	// segment, outside any memory limit; a 4 MiB module of one-byte
	// entries had the heap grow by 386 MiB, a 3 MiB module of empty
	// segments by 93 MiB.
	MaxElements int
	// MaxTypes, MaxGlobals and MaxDataSegments bound the function
	// types, the globals (imported and defined) and the data segments of
	// the module: wazero keeps tens of bytes of Go heap for each (a type
	// is three bytes of the module, a global five, a passive data segment
	// two), outside any memory limit: modules of 3, 5 and 2 MiB of them
	// had the heap grow by 284, 142 and 80 MiB.
	MaxTypes, MaxGlobals, MaxDataSegments int
}

// Names the instrumented module exports for the host.
const (
	// FuelUsedExport is the mutable i64 global counting the fuel spent.
	FuelUsedExport = "proofmesh.fuel_used"
	// FuelLimitExport is the mutable i64 global holding the budget: the
	// module traps at a check that takes the fuel spent above it.
	FuelLimitExport = "proofmesh.fuel_limit"
	// StartExport is the module's former start function, if it had one.
	StartExport = "proofmesh.start"
)

// BulkBytesPerRefuel is how many bytes the bulk instructions of a module
// may move before it calls refuel (see the package comment): 4 MiB,
// measured at 0.2-0.8 ms of memory.fill or memory.copy (5-23 GB/s here,
// the lower for fills of tens of MiB, out of cache), within the chunk of
// fuel's 2-3 ms of the tightest loop.
const BulkBytesPerRefuel = 1 << 22

// BulkOpBytes is what a bulk instruction adds to the bytes moved besides
// its length: its fixed cost, so that short ones do not slip between the
// two budgets. A memory.fill of n bytes makes about log2(n) calls of
// memmove up to 8 KiB, 6 ns each: fills of 32 bytes cost 34 ns, fuel 9 a
// turn of a loop, and reached refuel every 4.4 ms (2^21 fuel) charged
// their length alone; 1 KiB (0.05-0.2 µs of memmove) makes it well under
// a millisecond, for fills of any length.
const BulkOpBytes = 1 << 10

// The function the instrumented module imports, of type [] -> [], and
// calls when a check takes the fuel spent above the budget global, or
// the bytes moved above BulkBytesPerRefuel.
const (
	RefuelModule = "proofmesh_meter"
	RefuelName   = "refuel"
)

// External kinds of imports and exports.
const (
	KindFunc   byte = 0x00
	KindTable  byte = 0x01
	KindMemory byte = 0x02
	KindGlobal byte = 0x03
)

// Import is one import of the module.
type Import struct {
	Module, Name string
	Kind         byte
}

// Result is an instrumented module and what the host needs to know of it.
type Result struct {
	// Module is the instrumented binary.
	Module []byte
	// Imports lists the module's imports, in order.
	Imports []Import
	// HasStart reports that the module had a start function, now exported
	// as StartExport.
	HasStart bool
	// HasMemory reports a memory defined by the module; MemoryMin is its
	// initial size in 64 KiB pages.
	HasMemory bool
	MemoryMin uint32
	// Functions is the number of functions defined by the module, Loops
	// the number of loop headers metered, and Bulk the number of bulk
	// instructions charged to the bytes moved.
	Functions, Loops, Bulk int
	// The module's figures for each of the Bounds: the deepest nesting,
	// the most locals and the largest body of any function, and the
	// instructions of all bodies.
	MaxNesting, MaxLocals, MaxBodyBytes, Instructions int
	// Locals is the number of locals all functions declare, their
	// parameters included.
	Locals int
	// MaxControl is the most control instructions of any function, and
	// ControlWeight the sum of their squares (see Bounds).
	MaxControl, ControlWeight int
	// LabelWeight is the sum of the squares of each function's br_table
	// labels (see Bounds).
	LabelWeight int
	// Tables is the number of tables, imported and defined, and
	// MaxTableMin the largest minimum size of one, in entries.
	Tables, MaxTableMin int
	// Elements is the number of element segments plus their entries.
	Elements int
	// Types, Globals (imported and defined) and DataSegments are the
	// module's counts of each.
	Types, Globals, DataSegments int
}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// rank gives the position each known section must respect.
var rank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secTag: 6, secGlobal: 7, secExport: 8, secStart: 9, secElement: 10,
	secDataCount: 11, secCode: 12, secData: 13,
}

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

type section struct {
	id      byte
	content []byte
	offset  int // of content in the module
}

// module holds what Instrument learns while it reads the sections.
type module struct {
	bounds         Bounds
	res            Result
	importFuncs    int
	importGlobals  int
	definedGlobals int
	declaredFuncs  int
	exportNames    map[string]bool
	start          uint32
	types          []bool   // per type: takes and returns nothing
	params         []int    // per type: its parameters
	funcTypes      []uint32 // per function, imported ones first
	refuel         uint32   // index of the refuel import: importFuncs

	// The sections that hold function indices, renumbered (without
	// their counts for globals and exports, to which the meter adds),
	// and the table section with its maximums bounded.
	globals, exports, elements, tables []byte
	importTables                       int
}

// funcIndex reads a function index and checks that the function exists:
// an index past the end could otherwise land on a real function once
// renumbered.
func (m *module) funcIndex(r *reader) (uint32, error) {
	idx, err := r.u32()
	if err == nil && uint64(idx) >= uint64(len(m.funcTypes)) {
		return 0, r.errorf("function %d does not exist", idx)
	}
	return idx, err
}

// newFuncIndex renumbers a function index of the module: the refuel
// import comes after the module's imported functions, so its defined
// functions move up by one.
func (m *module) newFuncIndex(idx uint32) uint32 {
	if idx < uint32(m.importFuncs) { // the import section is read first
		return idx
	}
	return idx + 1
}

// scratchIndex returns the index of the local the meter appends to
// function idx (one with bulk instructions) after its declared locals:
// its parameters come first. A function of a type that does not exist
// makes the module invalid anyway.
func (m *module) scratchIndex(idx, locals int) uint32 {
	params := 0
	if t := m.funcTypes[idx]; uint64(t) < uint64(len(m.params)) {
		params = m.params[t]
	}
	return uint32(params + locals)
}

// emptyType returns the index of a type [] -> [], and whether it exists
// already (if not, it is the index of the type the meter appends).
func (m *module) emptyType() (uint32, bool) {
	for i, e := range m.types {
		if e {
			return uint32(i), true
		}
	}
	return uint32(len(m.types)), false
}

// Instrument returns the metered version of a module, or refuses it when
// it passes a bound of b (ErrBound); see the package comment for what it
// does. It never modifies wasm.
func Instrument(wasm []byte, b Bounds) (*Result, error) {
	if len(wasm) < len(header) || string(wasm[:len(header)]) != string(header) {
		return nil, fmt.Errorf("%w: no WebAssembly version 1 header", ErrMalformed)
	}
	var sections []section
	r := &reader{b: wasm, off: len(header)}
	last := 0
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		off := r.off
		content, err := r.bytes(int(size))
		if err != nil {
			return nil, err
		}
		if id != secCustom {
			k, ok := rank[id]
			if !ok {
				return nil, fmt.Errorf("%w: offset %d: unknown section id %d", ErrMalformed, off, id)
			}
			if k <= last {
				return nil, fmt.Errorf("%w: offset %d: section %d out of order or repeated", ErrMalformed, off, id)
			}
			last = k
			if id == secTag {
				return nil, fmt.Errorf("%w: tag section (exception handling)", ErrUnsupported)
			}
		}
		sections = append(sections, section{id: id, content: content, offset: off})
	}

	m := &module{bounds: b, exportNames: make(map[string]bool)}
	// First pass: everything the code section depends on. The sections
	// come in order, so the functions are all known before anything
	// refers to one.
	for _, s := range sections {
		sr := &reader{b: s.content, base: s.offset}
		var err error
		switch s.id {
		case secCustom:
			_, err = sr.name()
		case secTable:
			m.tables, err = m.readTables(sr)
		case secElement:
			m.elements, err = m.readElements(sr)
		case secData:
			err = m.readData(sr)
		case secDataCount:
			_, err = sr.u32()
			if err == nil {
				err = trailing(sr, "data count")
			}
		case secType:
			err = m.readTypes(sr)
		case secImport:
			err = m.readImports(sr)
		case secFunction:
			err = m.readFunctions(sr)
		case secMemory:
			err = m.readMemory(sr)
		case secGlobal:
			err = m.readGlobals(sr)
		case secExport:
			err = m.readExports(sr)
		case secStart:
			m.start, err = sr.u32()
			if err == nil && !sr.done() {
				err = sr.errorf("start section has trailing bytes")
			}
			m.res.HasStart = true
		}
		if err != nil {
			return nil, err
		}
	}
	if n := len(m.funcTypes); b.MaxFunctions > 0 && n > b.MaxFunctions {
		return nil, fmt.Errorf("%w: %d functions (%d imported), limit %d", ErrBound, n, m.importFuncs, b.MaxFunctions)
	}
	if m.res.HasStart {
		// The runtime would check the start function's type; as an export
		// it no longer does, so check it here.
		if int(m.start) >= len(m.funcTypes) {
			return nil, fmt.Errorf("%w: start function %d does not exist", ErrMalformed, m.start)
		}
		if t := m.funcTypes[m.start]; int(t) >= len(m.types) || !m.types[t] {
			return nil, fmt.Errorf("%w: start function %d must take and return nothing", ErrMalformed, m.start)
		}
	}
	if m.exportNames[FuelUsedExport] || m.exportNames[FuelLimitExport] || m.exportNames[StartExport] {
		return nil, fmt.Errorf("%w: exports a name reserved for the meter (%s, %s, %s)",
			ErrUnsupported, FuelUsedExport, FuelLimitExport, StartExport)
	}
	fuel := uint32(m.importGlobals + m.definedGlobals) // fuel used; fuel+1 is the budget, fuel+2 the bytes moved
	m.refuel = uint32(m.importFuncs)

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, header...)
	wroteType, wroteImport, wroteGlobal, wroteExport, sawCode := false, false, false, false, false
	emitUpTo := func(k int) {
		if !wroteType && k > rank[secType] {
			out = appendSection(out, secType, m.typeSection(nil))
			wroteType = true
		}
		if !wroteImport && k > rank[secImport] {
			out = appendSection(out, secImport, m.importSection(nil))
			wroteImport = true
		}
		if !wroteGlobal && k > rank[secGlobal] {
			out = appendSection(out, secGlobal, m.globalSection())
			wroteGlobal = true
		}
		if !wroteExport && k > rank[secExport] {
			out = appendSection(out, secExport, m.exportSection(fuel))
			wroteExport = true
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			emitUpTo(rank[s.id])
		}
		switch s.id {
		case secCustom:
			// Dropped: debugging sections hold code offsets and function
			// indices that no longer hold, and the runtime would trust
			// the counts of a name section to size its tables.
		case secType:
			out = appendSection(out, secType, m.typeSection(s.content))
			wroteType = true
		case secImport:
			out = appendSection(out, secImport, m.importSection(s.content))
			wroteImport = true
		case secTable:
			out = appendSection(out, secTable, m.tables)
		case secElement:
			out = appendSection(out, secElement, m.elements)
		case secGlobal:
			out = appendSection(out, secGlobal, m.globalSection())
			wroteGlobal = true
		case secExport:
			out = appendSection(out, secExport, m.exportSection(fuel))
			wroteExport = true
		case secStart:
			// Dropped: exported as StartExport instead.
		case secCode:
			sawCode = true
			code, err := m.rewriteCode(&reader{b: s.content, base: s.offset}, fuel)
			if err != nil {
				return nil, err
			}
			out = appendSection(out, secCode, code)
		default:
			out = appendSection(out, s.id, s.content)
		}
	}
	emitUpTo(len(rank) + 1)
	if !sawCode && m.declaredFuncs > 0 {
		return nil, fmt.Errorf("%w: %d functions declared, no code section", ErrMalformed, m.declaredFuncs)
	}
	m.res.Module = out
	return &m.res, nil
}

func (m *module) readImports(r *reader) error {
	n, err := r.count(4)
	if err != nil {
		return err
	}
	for range n {
		var imp Import
		if imp.Module, err = r.name(); err != nil {
			return err
		}
		if imp.Name, err = r.name(); err != nil {
			return err
		}
		if imp.Kind, err = r.byte(); err != nil {
			return err
		}
		if imp.Module == RefuelModule && imp.Name == RefuelName {
			return fmt.Errorf("%w: imports %s.%s, the name the meter reserves for its own import", ErrUnsupported, RefuelModule, RefuelName)
		}
		switch imp.Kind {
		case KindFunc:
			var t uint32
			t, err = r.u32()
			m.funcTypes = append(m.funcTypes, t)
			m.importFuncs++
		case KindTable:
			// Not rewritten: the host that provides the table bounds it
			// (the sandbox provides none and refuses the import). Its
			// minimum and the count of tables are bounded all the same.
			if err = readRefType(r); err == nil {
				var min uint32
				if min, _, _, err = readLimits(r); err == nil {
					err = m.table(m.importTables, min)
				}
			}
			m.importTables++
			if b := m.bounds.MaxTables; err == nil && b > 0 && m.importTables > b {
				err = fmt.Errorf("%w: imports more tables than the limit, %d", ErrBound, b)
			}
		case KindMemory:
			_, _, _, err = readLimits(r)
		case KindGlobal:
			err = readGlobalType(r)
			m.importGlobals++
		default:
			return fmt.Errorf("%w: import %s.%s of kind %#x", ErrUnsupported, imp.Module, imp.Name, imp.Kind)
		}
		if err != nil {
			return err
		}
		m.res.Imports = append(m.res.Imports, imp)
	}
	m.res.Tables = m.importTables // the table section, after, adds its own
	return trailing(r, "import")
}

func (m *module) readTypes(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	m.res.Types = n
	if err := bound("types", n, m.bounds.MaxTypes); err != nil {
		return err
	}
	for range n {
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return fmt.Errorf("%w: offset %d: type form %#x", ErrUnsupported, r.base+r.off-1, form)
		}
		empty := true
		for i := range 2 { // parameters, results
			k, err := r.count(1)
			if err != nil {
				return err
			}
			if k > MaxTypeValues {
				return fmt.Errorf("%w: type %d has %d %s, limit %d", ErrBound, len(m.types), k, [2]string{"parameters", "results"}[i], MaxTypeValues)
			}
			if i == 0 {
				m.params = append(m.params, k)
			}
			empty = empty && k == 0
			for range k {
				if err := readValType(r); err != nil {
					return err
				}
			}
		}
		m.types = append(m.types, empty)
	}
	return trailing(r, "type")
}

func (m *module) readFunctions(r *reader) error {
	n, err := r.count(1)
	if err != nil {
		return err
	}
	for range n {
		t, err := r.u32()
		if err != nil {
			return err
		}
		m.funcTypes = append(m.funcTypes, t)
	}
	m.declaredFuncs = n
	return trailing(r, "function")
}

// table checks the minimum of table idx against MaxTableEntries.
func (m *module) table(idx int, min uint32) error {
	m.res.MaxTableMin = max(m.res.MaxTableMin, int(min))
	if b := m.bounds.MaxTableEntries; b > 0 && uint64(min) > uint64(b) {
		return fmt.Errorf("%w: table %d has a minimum of %d entries, limit %d", ErrBound, idx, min, b)
	}
	return nil
}

// readTables reads the table section and returns it with the maximum of
// every table set to the smaller of its declared maximum and
// MaxTableEntries (see Bounds): a table without a maximum gets the bound.
func (m *module) readTables(r *reader) ([]byte, error) {
	n, err := r.count(3)
	if err != nil {
		return nil, err
	}
	m.res.Tables = m.importTables + n
	if b := m.bounds.MaxTables; b > 0 && m.res.Tables > b {
		return nil, fmt.Errorf("%w: %d tables (%d imported), limit %d", ErrBound, m.res.Tables, m.importTables, b)
	}
	out := appendU32(make([]byte, 0, len(r.b)+4*n), uint32(n))
	for i := range n {
		from := r.off
		if err := readRefType(r); err != nil {
			return nil, err
		}
		out = append(out, r.b[from:r.off]...)
		min, max, hasMax, err := readLimits(r)
		if err != nil {
			return nil, err
		}
		if err := m.table(m.importTables+i, min); err != nil {
			return nil, err
		}
		if b := m.bounds.MaxTableEntries; b > 0 && (!hasMax || uint64(max) > uint64(b)) {
			max, hasMax = uint32(b), true
		}
		if hasMax {
			out = appendU32(appendU32(append(out, 0x01), min), max)
		} else {
			out = appendU32(append(out, 0x00), min)
		}
	}
	return out, trailing(r, "table")
}

// readElements checks the element section's structure, so that no count
// in it is larger than the bytes that follow (the runtime sizes its
// tables by these counts before it reads the elements), bounds the
// segments and their entries (MaxElements), and returns it
// with its function indices renumbered: in the vectors of indices (flags
// 0 to 3) and in the ref.func of expressions (offsets, flags 4 to 7).
func (m *module) readElements(r *reader) ([]byte, error) {
	n, err := r.count(2)
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(r.b)+len(r.b)/8), uint32(n))
	for range n {
		flag, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flag > 7 {
			return nil, r.errorf("element segment flag %d", flag)
		}
		out = appendU32(out, flag)
		if flag&0b011 == 0b010 { // explicit table index
			t, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(out, t)
		}
		if flag&0b001 == 0 { // active: offset expression
			if out, err = m.constExpr(r, out); err != nil {
				return nil, err
			}
		}
		if flag&0b011 != 0 { // element kind or reference type
			k, err := r.byte()
			if err != nil {
				return nil, err
			}
			if flag&0b100 == 0 && k != 0x00 {
				return nil, r.errorf("element kind %#x", k)
			}
			if flag&0b100 != 0 && k != 0x70 && k != 0x6f {
				return nil, fmt.Errorf("%w: offset %d: reference type %#x", ErrUnsupported, r.base+r.off-1, k)
			}
			out = append(out, k)
		}
		k, err := r.count(1)
		if err != nil {
			return nil, err
		}
		m.res.Elements += 1 + k // the segment and its entries
		if b := m.bounds.MaxElements; b > 0 && m.res.Elements > b {
			return nil, fmt.Errorf("%w: element segments and entries, %d or more, limit %d", ErrBound, m.res.Elements, b)
		}
		out = appendU32(out, uint32(k))
		for range k {
			if flag&0b100 == 0 {
				var idx uint32
				if idx, err = m.funcIndex(r); err == nil {
					out = appendU32(out, m.newFuncIndex(idx))
				}
			} else {
				out, err = m.constExpr(r, out)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return out, trailing(r, "element")
}

// bound checks a count of the module's against its bound (0: none).
func bound(what string, n, limit int) error {
	if limit > 0 && n > limit {
		return fmt.Errorf("%w: %d %s, limit %d", ErrBound, n, what, limit)
	}
	return nil
}

func (m *module) readData(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	m.res.DataSegments = n
	if err := bound("data segments", n, m.bounds.MaxDataSegments); err != nil {
		return err
	}
	for range n {
		flag, err := r.u32()
		if err != nil {
			return err
		}
		switch flag {
		case 0: // active, memory 0
			_, err = (*module)(nil).constExpr(r, nil)
		case 1: // passive
		case 2: // active, explicit memory
			var mem uint32
			if mem, err = r.u32(); err == nil && mem != 0 {
				return fmt.Errorf("%w: data segment for memory %d", ErrUnsupported, mem)
			}
			if err == nil {
				_, err = (*module)(nil).constExpr(r, nil)
			}
		default:
			return r.errorf("data segment flag %d", flag)
		}
		if err != nil {
			return err
		}
		k, err := r.u32()
		if err != nil {
			return err
		}
		if _, err := r.bytes(int(k)); err != nil {
			return err
		}
	}
	return trailing(r, "data")
}

// readLimits reads the limits of a table or memory: the minimum, and the
// maximum if hasMax. Flags other than 0 (min) and 1 (min, max), those of
// shared memories and 64-bit memories and tables, are beyond
// WebAssembly 2.0.
func readLimits(r *reader) (min, max uint32, hasMax bool, err error) {
	flag, err := r.byte()
	if err != nil {
		return 0, 0, false, err
	}
	if flag > 1 {
		return 0, 0, false, fmt.Errorf("%w: limits flag %#x (shared or 64-bit memory or table)", ErrUnsupported, flag)
	}
	if min, err = r.u32(); err != nil {
		return 0, 0, false, err
	}
	if flag == 1 {
		max, err = r.u32()
	}
	return min, max, flag == 1, err
}

func readGlobalType(r *reader) error {
	if err := readValType(r); err != nil {
		return err
	}
	mut, err := r.byte()
	if err != nil {
		return err
	}
	if mut > 1 {
		return r.errorf("global mutability %#x", mut)
	}
	return nil
}

func (m *module) readMemory(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	if n > 1 {
		return fmt.Errorf("%w: %d memories", ErrUnsupported, n)
	}
	if n == 1 {
		if m.res.MemoryMin, _, _, err = readLimits(r); err != nil {
			return err
		}
		m.res.HasMemory = true
	}
	return trailing(r, "memory")
}

// readGlobals reads the global section and keeps its globals with the
// function indices of their initializers renumbered.
func (m *module) readGlobals(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	m.res.Globals = m.importGlobals + n
	if err := bound("globals", m.res.Globals, m.bounds.MaxGlobals); err != nil {
		return err
	}
	out := make([]byte, 0, len(r.b)+len(r.b)/8)
	for range n {
		from := r.off
		if err := readGlobalType(r); err != nil {
			return err
		}
		out = append(out, r.b[from:r.off]...)
		if out, err = m.constExpr(r, out); err != nil {
			return err
		}
	}
	m.definedGlobals = n
	m.globals = out
	return trailing(r, "global")
}

// constExpr reads an initializer expression up to its end and appends it
// to out with the index of each ref.func checked and renumbered, unless m
// is nil (a data segment's offset, which only reads it).
func (m *module) constExpr(r *reader, out []byte) ([]byte, error) {
	for {
		from := r.off
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch op {
		case opEnd:
			if m != nil {
				out = append(out, opEnd)
			}
			return out, nil
		case opI32Const:
			_, err = r.sleb(32)
		case opI64Const:
			_, err = r.sleb(64)
		case opF32Const:
			_, err = r.bytes(4)
		case opF64Const:
			_, err = r.bytes(8)
		case opGlobalGet:
			_, err = r.u32()
		case opRefFunc:
			if m == nil {
				_, err = r.u32()
				break
			}
			var idx uint32
			if idx, err = m.funcIndex(r); err == nil {
				out = appendU32(append(out, opRefFunc), m.newFuncIndex(idx))
				continue
			}
		case opRefNull:
			err = readRefType(r)
		case opPrefixSIMD:
			var sub uint32
			if sub, err = r.u32(); err == nil {
				if sub != simdV128Const {
					return nil, fmt.Errorf("%w: offset %d: SIMD opcode %d in a constant expression", ErrUnsupported, r.base+r.off, sub)
				}
				_, err = r.bytes(16)
			}
		default:
			return nil, fmt.Errorf("%w: offset %d: opcode %#x in a constant expression", ErrUnsupported, r.base+r.off-1, op)
		}
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, r.b[from:r.off]...)
		}
	}
}

func (m *module) readExports(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	for range n {
		name, err := r.name()
		if err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		idx, err := r.u32()
		if err != nil {
			return err
		}
		if kind > KindGlobal {
			return fmt.Errorf("%w: export %q of kind %#x", ErrUnsupported, name, kind)
		}
		if kind == KindFunc {
			if uint64(idx) >= uint64(len(m.funcTypes)) {
				return fmt.Errorf("%w: export %q of function %d, which does not exist", ErrMalformed, name, idx)
			}
			idx = m.newFuncIndex(idx)
		}
		if kind == KindGlobal && int(idx) >= m.importGlobals+m.definedGlobals {
			// The index the meter's global will take: refuse, or the
			// module would export it under its own name.
			return fmt.Errorf("%w: export %q of global %d, which does not exist", ErrMalformed, name, idx)
		}
		if m.exportNames[name] {
			return fmt.Errorf("%w: export name %q repeated", ErrMalformed, name)
		}
		m.exportNames[name] = true
		m.exports = appendName(m.exports, name)
		m.exports = appendU32(append(m.exports, kind), idx)
	}
	return trailing(r, "export")
}

func trailing(r *reader, what string) error {
	if !r.done() {
		return r.errorf("%s section has %d trailing bytes", what, len(r.b)-r.off)
	}
	return nil
}

// globalSection returns the global section with the meter's globals
// appended: fuel used, budget and bytes moved, (mut i64) all 0, so that
// nothing runs before the host sets the budget.
func (m *module) globalSection() []byte {
	out := appendU32(nil, uint32(m.definedGlobals+3))
	out = append(out, m.globals...)
	for range 3 {
		out = append(out, valI64, 0x01, opI64Const, 0x00, opEnd)
	}
	return out
}

// exportSection returns the export section with the meter's globals (and
// the former start function) added.
func (m *module) exportSection(fuel uint32) []byte {
	n := len(m.exportNames) + 2
	if m.res.HasStart {
		n++
	}
	out := appendU32(nil, uint32(n))
	out = append(out, m.exports...)
	out = appendName(out, FuelUsedExport)
	out = append(out, KindGlobal)
	out = appendU32(out, fuel)
	out = appendName(out, FuelLimitExport)
	out = append(out, KindGlobal)
	out = appendU32(out, fuel+1)
	if m.res.HasStart {
		out = appendName(out, StartExport)
		out = append(out, KindFunc)
		out = appendU32(out, m.newFuncIndex(m.start))
	}
	return out
}

// typeSection returns the type section (old, nil if none) with a type
// [] -> [] appended unless it has one, for the refuel import.
func (m *module) typeSection(old []byte) []byte {
	if _, ok := m.emptyType(); ok {
		return old
	}
	var body []byte
	if old != nil {
		r := &reader{b: old}
		_, _ = r.u32() // read before: cannot fail
		body = old[r.off:]
	}
	out := appendU32(nil, uint32(len(m.types)+1))
	out = append(out, body...)
	return append(out, 0x60, 0x00, 0x00)
}

// importSection returns the import section (old, nil if none) with the
// refuel import appended: it takes the function index after the module's
// imported functions.
func (m *module) importSection(old []byte) []byte {
	var body []byte
	if old != nil {
		r := &reader{b: old}
		_, _ = r.u32()
		body = old[r.off:]
	}
	out := appendU32(nil, uint32(len(m.res.Imports)+1))
	out = append(out, body...)
	out = appendName(out, RefuelModule)
	out = appendName(out, RefuelName)
	t, _ := m.emptyType()
	return appendU32(append(out, KindFunc), t)
}

func appendSection(out []byte, id byte, content []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(content)))
	return append(out, content...)
}

func appendName(out []byte, s string) []byte {
	out = appendU32(out, uint32(len(s)))
	return append(out, s...)
}

func appendU32(out []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func appendS64(out []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}
