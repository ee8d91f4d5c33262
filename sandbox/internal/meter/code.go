package meter

import (
	"errors"
	"fmt"
)

// Opcodes the meter needs by name.
const (
	opUnreachable  = 0x00
	opBlock        = 0x02
	opLoop         = 0x03
	opIf           = 0x04
	opElse         = 0x05
	opEnd          = 0x0b
	opBr           = 0x0c
	opBrIf         = 0x0d
	opBrTable      = 0x0e
	opCall         = 0x10
	opCallIndirect = 0x11
	opSelectT      = 0x1c
	opLocalGet     = 0x20
	opLocalSet     = 0x21
	opLocalTee     = 0x22
	opGlobalGet    = 0x23
	opGlobalSet    = 0x24
	opTableGet     = 0x25
	opTableSet     = 0x26
	opMemorySize   = 0x3f
	opMemoryGrow   = 0x40
	opI32Const     = 0x41
	opI64Const     = 0x42
	opF32Const     = 0x43
	opF64Const     = 0x44
	opI64GtS       = 0x55
	opI64Add       = 0x7c
	opI64Shl       = 0x86
	opI64ExtendU   = 0xad // i64.extend_i32_u
	opRefNull      = 0xd0
	opRefIsNull    = 0xd1
	opRefFunc      = 0xd2
	opPrefixMisc   = 0xfc
	opPrefixSIMD   = 0xfd

	valI32        = 0x7f
	valI64        = 0x7e
	blockEmpty    = 0x40
	simdV128Const = 12

	// Bulk instructions, after the prefix opPrefixMisc.
	miscMemoryInit = 8
	miscMemoryCopy = 10
	miscMemoryFill = 11
	miscTableInit  = 12
	miscTableCopy  = 14
	miscTableFill  = 17
)

// MaxLocals bounds the locals of one function (as wasmtime and V8 do),
// the meter's scratch local aside (one more at most).
const MaxLocals = 50000

// MaxTypeValues bounds the parameters, and the results, of one function
// type (as V8 does): wazero compiles every function in time and memory
// that grow with its parameters, which no other bound counted: 100
// functions of a type of 100,000 parameters, a module of 100 KB, took
// 9.4 s and allocated 14.7 GB to compile.
const MaxTypeValues = 1000

// maxRegionCost caps the cost charged at one check (the size of a region
// in instructions), so that the constant always fits the encoding.
const maxRegionCost = 1 << 40

// frame is an open block of the function being decoded.
type frame struct {
	region int  // index into the function's region costs
	isLoop bool // closing it returns to the enclosing region
}

// edit is a change to a body, in the order of the bytes: a loop header
// (inject: after byte pos, charge region's cost), a bulk instruction
// (bulk: before byte pos, charge its length, shifted left by shift, to
// the bytes moved), or a function index (the immediate in bytes
// [pos, end) becomes idx).
type edit struct {
	pos, end int
	inject   bool
	bulk     bool
	shift    uint8
	region   int
	idx      uint32
}

// rewriteCode meters every function body of the code section.
func (m *module) rewriteCode(r *reader, fuel uint32) ([]byte, error) {
	n, err := r.count(2)
	if err != nil {
		return nil, err
	}
	if n != m.declaredFuncs {
		return nil, r.errorf("code section has %d bodies for %d declared functions", n, m.declaredFuncs)
	}
	out := appendU32(make([]byte, 0, len(r.b)+len(r.b)/8), uint32(n))
	var fn funcState
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.off
		body, err := r.bytes(int(size))
		if err != nil {
			return nil, err
		}
		idx := m.importFuncs + i
		b := m.bounds
		if b.MaxBodyBytes > 0 && len(body) > b.MaxBodyBytes {
			return nil, fmt.Errorf("%w: function %d has a body of %d bytes, limit %d", ErrBound, idx, len(body), b.MaxBodyBytes)
		}
		fn.reset(m, &reader{b: body, base: r.base + start})
		if err := fn.decode(idx); errors.Is(err, ErrBound) {
			return nil, err // names the function
		} else if err != nil {
			return nil, fmt.Errorf("function %d: %w", idx, err)
		}
		// The whole body is decoded first (linear in its size), so that
		// the message gives its real depth.
		if b.MaxNesting > 0 && fn.maxDepth > b.MaxNesting {
			return nil, fmt.Errorf("%w: function %d nests blocks %d deep, limit %d", ErrBound, idx, fn.maxDepth, b.MaxNesting)
		}
		res := &m.res
		res.Locals += int(m.scratchIndex(idx, fn.locals)) // its parameters and locals: wazero keeps both
		if b.MaxTotalLocals > 0 && res.Locals > b.MaxTotalLocals {
			return nil, fmt.Errorf("%w: functions %d to %d declare %d locals, limit %d",
				ErrBound, m.importFuncs, idx, res.Locals, b.MaxTotalLocals)
		}
		res.Instructions += fn.instructions
		if b.MaxInstructions > 0 && res.Instructions > b.MaxInstructions {
			return nil, fmt.Errorf("%w: functions %d to %d hold %d instructions, limit %d",
				ErrBound, m.importFuncs, idx, res.Instructions, b.MaxInstructions)
		}
		res.ControlWeight += fn.control * fn.control // < 2^31 * 2^31: no overflow
		if b.MaxControlWeight > 0 && res.ControlWeight > b.MaxControlWeight {
			return nil, fmt.Errorf("%w: function %d has %d branches and blocks, which brings the module's control weight to %d, limit %d",
				ErrBound, idx, fn.control, res.ControlWeight, b.MaxControlWeight)
		}
		res.LabelWeight += fn.labels * fn.labels // < 2^31 * 2^31: no overflow
		if b.MaxLabelWeight > 0 && res.LabelWeight > b.MaxLabelWeight {
			return nil, fmt.Errorf("%w: function %d has %d br_table labels, which brings the module's label weight to %d, limit %d",
				ErrBound, idx, fn.labels, res.LabelWeight, b.MaxLabelWeight)
		}
		res.MaxControl = max(res.MaxControl, fn.control)
		res.MaxNesting = max(res.MaxNesting, fn.maxDepth)
		res.MaxLocals = max(res.MaxLocals, fn.locals)
		res.MaxBodyBytes = max(res.MaxBodyBytes, len(body))
		nb := fn.emit(fuel, m.refuel, m.scratchIndex(idx, fn.locals))
		out = appendU32(out, uint32(len(nb)))
		out = append(out, nb...)
		m.res.Loops += fn.loops
		m.res.Bulk += fn.bulk
	}
	m.res.Functions = n
	return out, trailing(r, "code")
}

// funcState decodes one function body; it is reused between bodies.
type funcState struct {
	m            *module
	r            *reader
	groupsEnd    int // offset after the count of local declarations
	groups       int // local declarations (count and type each)
	codeFrom     int // offset of the first instruction (after the locals)
	locals       int // declared, parameters not included
	bulk         int // bulk instructions, each charged to the bytes moved
	maxDepth     int // of nested blocks
	control      int // block, loop, if, else, br, br_if, br_table
	labels       int // of its br_tables
	instructions int
	costs        []int // per region: instructions executed per entry
	stack        []frame
	loops        int
	edits        []edit
	nb           []byte
}

func (f *funcState) reset(m *module, r *reader) {
	f.m, f.r = m, r
	f.locals, f.maxDepth, f.instructions, f.control, f.bulk, f.labels = 0, 0, 0, 0, 0, 0
	f.costs = f.costs[:0]
	f.stack = f.stack[:0]
	f.loops = 0
	f.edits = f.edits[:0]
}

// decode reads the body of function idx, measuring it.
func (f *funcState) decode(idx int) error {
	r := f.r
	groups, err := r.count(2)
	if err != nil {
		return err
	}
	f.groups, f.groupsEnd = groups, r.off
	var locals uint64 // groups*2^32 at most: no overflow
	for range groups {
		k, err := r.u32()
		if err != nil {
			return err
		}
		locals += uint64(k)
		if err := readValType(r); err != nil {
			return err
		}
	}
	if b := f.m.bounds.MaxLocals; b > 0 && locals > uint64(b) {
		return fmt.Errorf("%w: function %d declares %d locals, limit %d", ErrBound, idx, locals, b)
	}
	if locals > MaxLocals {
		// The runtime allocates the declared locals before it validates
		// them: a few bytes could ask for gigabytes.
		return fmt.Errorf("%w: %d locals, more than %d", ErrUnsupported, locals, MaxLocals)
	}
	f.locals = int(locals)
	f.codeFrom = r.off
	f.costs = append(f.costs, 0)
	f.stack = append(f.stack, frame{region: 0})
	for len(f.stack) > 0 {
		if r.done() {
			return r.errorf("function body ends inside a block")
		}
		top := &f.stack[len(f.stack)-1]
		f.instructions++
		f.costs[top.region]++
		if f.costs[top.region] > maxRegionCost {
			return fmt.Errorf("%w: function too large", ErrUnsupported)
		}
		at := r.off
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case opBlock, opIf, opLoop, opElse, opBr, opBrIf, opBrTable:
			f.control++
		}
		switch op {
		case opBlock, opIf:
			if err := f.blockType(); err != nil {
				return err
			}
			f.stack = append(f.stack, frame{region: top.region})
			f.maxDepth = max(f.maxDepth, len(f.stack)-1)
		case opLoop:
			if err := f.blockType(); err != nil {
				return err
			}
			f.costs = append(f.costs, 0)
			region := len(f.costs) - 1
			f.loops++
			f.edits = append(f.edits, edit{pos: r.off, end: r.off, inject: true, region: region})
			f.stack = append(f.stack, frame{region: region, isLoop: true})
			f.maxDepth = max(f.maxDepth, len(f.stack)-1)
		case opEnd:
			f.stack = f.stack[:len(f.stack)-1]
		default:
			if err := f.immediates(op, at); err != nil {
				return err
			}
		}
	}
	if !r.done() {
		return r.errorf("%d bytes after the end of the function body", len(r.b)-r.off)
	}
	return nil
}

func (f *funcState) blockType() error {
	start := f.r.off
	t, err := f.r.sleb(33)
	if err != nil {
		return err
	}
	// Negative: the empty type or a value type, one byte; otherwise a type
	// index, checked by the runtime. Typed references (0x63, 0x64) carry
	// a heap type after them: refused, or the decoding would drift.
	if t < 0 && (f.r.off-start != 1 || (byte(t&0x7f) != blockEmpty && !validValType(byte(t&0x7f)))) {
		return fmt.Errorf("%w: offset %d: block type %#x", ErrUnsupported, f.r.base+start, byte(t&0x7f))
	}
	return nil
}

// validValType reports the value types of WebAssembly 2.0, each one byte.
func validValType(b byte) bool {
	switch b {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f: // i32 i64 f32 f64 v128 funcref externref
		return true
	}
	return false
}

// readValType reads one value type of WebAssembly 2.0.
func readValType(r *reader) error {
	b, err := r.byte()
	if err == nil && !validValType(b) {
		return fmt.Errorf("%w: offset %d: value type %#x", ErrUnsupported, r.base+r.off-1, b)
	}
	return err
}

// readRefType reads funcref or externref.
func readRefType(r *reader) error {
	b, err := r.byte()
	if err == nil && b != 0x70 && b != 0x6f {
		return fmt.Errorf("%w: offset %d: reference type %#x", ErrUnsupported, r.base+r.off-1, b)
	}
	return err
}

// immediates skips the immediates of every other opcode (at offset at),
// and refuses the opcodes the meter does not know.
func (f *funcState) immediates(op byte, at int) error {
	r := f.r
	var err error
	switch {
	case op == opUnreachable || op == 0x01 || op == opElse || op == 0x0f || // nop, else, return
		op == 0x1a || op == 0x1b || // drop, select
		op >= 0x45 && op <= 0xc4 || // numeric, sign extension
		op == opRefIsNull:
	case op == opBr || op == opBrIf ||
		op == opLocalGet || op == opLocalSet || op == opLocalTee ||
		op == opTableGet || op == opTableSet:
		_, err = r.u32()
	case op == opCall || op == opRefFunc:
		pos := r.off
		var idx uint32
		if idx, err = f.m.funcIndex(r); err == nil && idx != f.m.newFuncIndex(idx) {
			f.edits = append(f.edits, edit{pos: pos, end: r.off, idx: f.m.newFuncIndex(idx)})
		}
	case op == opGlobalGet || op == opGlobalSet:
		var idx uint32
		if idx, err = r.u32(); err == nil && int(idx) >= f.m.importGlobals+f.m.definedGlobals {
			// Also the indices of the meter's globals: a module must
			// not reach them.
			return r.errorf("global %d does not exist", idx)
		}
	case op == opBrTable:
		var n int
		if n, err = r.count(1); err == nil {
			f.labels += n
			for i := 0; i <= n && err == nil; i++ { // n labels and the default
				_, err = r.u32()
			}
		}
	case op == opCallIndirect:
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	case op == opSelectT:
		var n int
		if n, err = r.count(1); err == nil {
			for i := 0; i < n && err == nil; i++ {
				err = readValType(r)
			}
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		err = f.memarg()
	case op == opMemorySize || op == opMemoryGrow:
		err = f.memIndex()
	case op == opI32Const:
		_, err = r.sleb(32)
	case op == opI64Const:
		_, err = r.sleb(64)
	case op == opF32Const:
		_, err = r.bytes(4)
	case op == opF64Const:
		_, err = r.bytes(8)
	case op == opRefNull:
		err = readRefType(r)
	case op == opPrefixMisc:
		err = f.misc(at)
	case op == opPrefixSIMD:
		err = f.simd()
	default:
		return fmt.Errorf("%w: offset %d: opcode %#x", ErrUnsupported, r.base+r.off-1, op)
	}
	return err
}

func (f *funcState) memarg() error {
	align, err := f.r.u32()
	if err != nil {
		return err
	}
	if align >= 0x40 { // bit 6 announces a memory index (multi-memory)
		return fmt.Errorf("%w: offset %d: memory index in memarg", ErrUnsupported, f.r.base+f.r.off)
	}
	_, err = f.r.u32()
	return err
}

// memIndex reads the memory index of memory instructions: 0, the only one.
func (f *funcState) memIndex() error {
	idx, err := f.r.u32()
	if err == nil && idx != 0 {
		return fmt.Errorf("%w: offset %d: memory index %d", ErrUnsupported, f.r.base+f.r.off, idx)
	}
	return err
}

// misc reads an instruction of prefix 0xfc at offset at (the prefix's),
// and marks the bulk instructions, whose length operand the emitted body
// charges to the bytes moved before them: memory.init, memory.copy and
// memory.fill move that many bytes, table.init, table.copy and table.fill
// that many 8-byte references (so their length is shifted by 3).
func (f *funcState) misc(at int) error {
	r := f.r
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch sub {
	case miscMemoryInit, miscMemoryCopy, miscMemoryFill:
		f.edits = append(f.edits, edit{pos: at, end: at, bulk: true})
		f.bulk++
	case miscTableInit, miscTableCopy, miscTableFill:
		f.edits = append(f.edits, edit{pos: at, end: at, bulk: true, shift: 3})
		f.bulk++
	}
	switch {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data mem
		if _, err = r.u32(); err == nil {
			err = f.memIndex()
		}
	case sub == 9, sub == 13, sub == 15, sub == 16, sub == 17: // data.drop, elem.drop, table.grow/size/fill
		_, err = r.u32()
	case sub == 10: // memory.copy dst src
		if err = f.memIndex(); err == nil {
			err = f.memIndex()
		}
	case sub == 11: // memory.fill
		err = f.memIndex()
	case sub == 12, sub == 14: // table.init elem table, table.copy dst src
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	default:
		return fmt.Errorf("%w: offset %d: opcode 0xfc %d", ErrUnsupported, r.base+r.off, sub)
	}
	return err
}

// simdReserved are the opcodes that fixed-width SIMD leaves unassigned.
var simdReserved = map[uint32]bool{
	0x9a: true, 0xa2: true, 0xa5: true, 0xa6: true, 0xaf: true, 0xb0: true,
	0xb2: true, 0xb3: true, 0xb4: true, 0xbb: true, 0xc2: true, 0xc5: true,
	0xc6: true, 0xcf: true, 0xd0: true, 0xd2: true, 0xd3: true, 0xd4: true,
	0xe2: true, 0xee: true,
}

func (f *funcState) simd() error {
	r := f.r
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads, splat loads, store, zero loads
		err = f.memarg()
	case sub == simdV128Const, sub == 13: // v128.const, i8x16.shuffle
		_, err = r.bytes(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		_, err = r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		if err = f.memarg(); err == nil {
			_, err = r.byte()
		}
	case sub <= 0xff && !simdReserved[sub]:
	default:
		return fmt.Errorf("%w: offset %d: opcode 0xfd %d", ErrUnsupported, r.base+r.off, sub)
	}
	return err
}

// emit returns the metered body: the locals (with the scratch local
// appended if the body has bulk instructions; scratch is its index), the
// entry check, and the instructions with a check after every loop header,
// a charge of the bytes moved before every bulk instruction, and every
// function index renumbered. The body's size may change (a check, an
// index whose LEB128 grows): the caller writes the new size.
func (f *funcState) emit(fuel, refuel, scratch uint32) []byte {
	b := f.r.b
	nb := f.nb[:0]
	if f.bulk > 0 {
		nb = appendU32(nb, uint32(f.groups+1))
		nb = append(nb, b[f.groupsEnd:f.codeFrom]...)
		nb = append(nb, 1, valI32)
	} else {
		nb = append(nb, b[:f.codeFrom]...)
	}
	nb = appendCheck(nb, fuel, refuel, f.costs[0])
	from := f.codeFrom
	for _, e := range f.edits {
		nb = append(nb, b[from:e.pos]...)
		switch {
		case e.inject:
			nb = appendCheck(nb, fuel, refuel, f.costs[e.region])
		case e.bulk:
			nb = appendBulkCharge(nb, fuel+2, refuel, scratch, e.shift)
		default:
			nb = appendU32(nb, e.idx)
		}
		from = e.end
	}
	nb = append(nb, b[from:]...)
	f.nb = nb
	return nb
}

// appendCheck appends the fuel check of a region of cost instructions;
// fuel is the index of the fuel-used global, fuel+1 that of the budget,
// refuel that of the host function the check calls past the budget.
func appendCheck(b []byte, fuel, refuel uint32, cost int) []byte {
	b = append(b, opGlobalGet)
	b = appendU32(b, fuel)
	b = append(b, opI64Const)
	b = appendS64(b, int64(cost))
	b = append(b, opI64Add, opGlobalSet)
	b = appendU32(b, fuel)
	b = append(b, opGlobalGet)
	b = appendU32(b, fuel)
	b = append(b, opGlobalGet)
	b = appendU32(b, fuel+1)
	b = append(b, opI64GtS, opIf, blockEmpty, opCall)
	b = appendU32(b, refuel)
	b = append(b, opEnd)
	return b
}

// appendBulkCharge appends, before a bulk instruction, the charge of its
// length (the i32 on top of the stack, which it leaves there: the scratch
// local holds it meanwhile), shifted left by shift, plus BulkOpBytes, to
// the bytes-moved global moved, and the call of refuel, with the global
// reset, once that passes BulkBytesPerRefuel:
//
//	local.tee $scratch; i64.extend_i32_u; [i64.const shift; i64.shl]
//	global.get $moved; i64.add; i64.const BulkOpBytes; i64.add; global.set $moved
//	global.get $moved; i64.const BulkBytesPerRefuel; i64.gt_s
//	if; i64.const 0; global.set $moved; call $refuel; end
//	local.get $scratch
//
// It charges no fuel: the fuel of every instruction stays what it was.
func appendBulkCharge(b []byte, moved, refuel, scratch uint32, shift uint8) []byte {
	b = append(b, opLocalTee)
	b = appendU32(b, scratch)
	b = append(b, opI64ExtendU)
	if shift > 0 {
		b = append(b, opI64Const, shift, opI64Shl) // shift < 64: one byte
	}
	b = append(b, opGlobalGet)
	b = appendU32(b, moved)
	b = append(b, opI64Add, opI64Const)
	b = appendS64(b, BulkOpBytes)
	b = append(b, opI64Add, opGlobalSet)
	b = appendU32(b, moved)
	b = append(b, opGlobalGet)
	b = appendU32(b, moved)
	b = append(b, opI64Const)
	b = appendS64(b, BulkBytesPerRefuel)
	b = append(b, opI64GtS, opIf, blockEmpty, opI64Const, 0x00, opGlobalSet)
	b = appendU32(b, moved)
	b = append(b, opCall)
	b = appendU32(b, refuel)
	b = append(b, opEnd, opLocalGet)
	return appendU32(b, scratch)
}
