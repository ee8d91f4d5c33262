package meter

import (
	"fmt"
	"unicode/utf8"
)

// reader decodes the primitive encodings of the WebAssembly binary format
// from a byte slice. Every method fails with ErrMalformed, naming the
// offset, instead of reading past the end or accepting a non-canonical
// over-long number.
type reader struct {
	b    []byte
	off  int
	base int // offset of b[0] in the whole module, for messages
}

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrMalformed, r.base+r.off, fmt.Sprintf(format, args...))
}

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("unexpected end")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, r.errorf("%d bytes announced, %d left", n, len(r.b)-r.off)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

// uleb reads an unsigned LEB128 number of at most bits bits (32 or 64),
// refusing encodings longer than ceil(bits/7) bytes and unused high bits.
func (r *reader) uleb(bits uint) (uint64, error) {
	maxBytes := (bits + 6) / 7
	var v uint64
	for i := uint(0); i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		p := c & 0x7f
		v |= uint64(p) << (7 * i)
		if c&0x80 != 0 {
			continue
		}
		if i == maxBytes-1 && p>>(bits-7*i) != 0 {
			return 0, r.errorf("unsigned LEB128 overflows %d bits", bits)
		}
		return v, nil
	}
	return 0, r.errorf("unsigned LEB128 longer than %d bytes", maxBytes)
}

// sleb reads a signed LEB128 number of at most bits bits (32, 33 or 64),
// refusing encodings longer than ceil(bits/7) bytes and unused high bits
// that are not the sign.
func (r *reader) sleb(bits uint) (int64, error) {
	maxBytes := (bits + 6) / 7
	var v int64
	for i := uint(0); i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		p := c & 0x7f
		v |= int64(p) << (7 * i)
		if c&0x80 != 0 {
			continue
		}
		if i == maxBytes-1 {
			used := bits - 7*i   // value bits in this byte, sign included
			s := int8(p<<1) >> 1 // the 7 payload bits, sign-extended
			if t := s >> (used - 1); t != 0 && t != -1 {
				return 0, r.errorf("signed LEB128 overflows %d bits", bits)
			}
		}
		if shift := 7 * (i + 1); shift < 64 && p&0x40 != 0 {
			v |= -1 << shift
		}
		return v, nil
	}
	return 0, r.errorf("signed LEB128 longer than %d bytes", maxBytes)
}

func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

// count reads a vector length and checks that at least min bytes per
// element remain, so a forged length cannot make a loop run long.
func (r *reader) count(min int) (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if min > 0 && uint64(n)*uint64(min) > uint64(len(r.b)-r.off) {
		return 0, r.errorf("vector of %d elements does not fit in %d bytes", n, len(r.b)-r.off)
	}
	return int(n), nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(n))
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", r.errorf("name is not UTF-8")
	}
	return string(b), nil
}
