//go:build linux

package residency

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// mappingRSS is the resident KiB of the mapping that starts at addr
// (/proc/self/smaps).
func mappingRSS(t *testing.T, addr uintptr) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	head := strconv.FormatUint(uint64(addr), 16) + "-"
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") { // a mapping's header
			in = strings.HasPrefix(line, head)
			continue
		}
		if in && len(f) >= 2 && f[0] == "Rss:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no mapping at %#x in /proc/self/smaps", addr)
	return 0
}

// A read-only private mapping of a file on disk, every page touched, as
// start-up leaves the executable's code: paging it out must take it out
// of the resident set. (The test binary itself is too small to show it:
// the kernel caches a small file in a few large folios that straddle its
// mappings, and pages out only folios a range covers whole.)
func TestPageOutDropsResidentFilePages(t *testing.T) {
	dir := t.TempDir()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Type == 0x01021994 { // TMPFS_MAGIC
		t.Skip("the temp dir is tmpfs: its pages are memory, not a file to page back in from")
	}
	const size = 16 << 20
	path := filepath.Join(dir, "code")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xc3}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil { // reclaim skips dirty file pages
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	var sum byte
	for i := 0; i < size; i += 4096 {
		sum += mem[i]
	}
	addr := uintptr(unsafe.Pointer(&mem[0]))
	before := mappingRSS(t, addr)
	rel, err := pageOut([]addrRange{{addr, addr + size}})
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("kernel without MADV_PAGEOUT: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	after := mappingRSS(t, addr)
	t.Logf("advised %s: resident %d KiB -> %d KiB", rel, before, after)
	if before < size/1024/2 {
		t.Fatalf("only %d KiB of the %d KiB touched were resident before", before, size/1024)
	}
	if after*4 > before {
		t.Errorf("resident %d KiB -> %d KiB, want a quarter or less left", before, after)
	}
	// The pages come back from the file, unchanged, when touched again.
	var again byte
	for i := 0; i < size; i += 4096 {
		again += mem[i]
	}
	if again != sum || mem[size-1] != 0xc3 {
		t.Fatal("the mapping's contents changed after paging out")
	}
}

func TestReleaseStartupPages(t *testing.T) {
	rel, err := ReleaseStartupPages()
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("kernel without MADV_PAGEOUT: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if rel.Mappings < 2 || rel.Bytes == 0 {
		t.Errorf("advised %s, want the code and the read-only data of the executable at least", rel)
	}
}

func TestExecutableRanges(t *testing.T) {
	maps := []byte(`00400000-00c00000 r-xp 00000000 08:01 123 /usr/bin/proofmesh
00c00000-01400000 r--p 00800000 08:01 123 /usr/bin/proofmesh
01400000-01500000 rw-p 01000000 08:01 123 /usr/bin/proofmesh
01500000-01600000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--p 00000000 08:01 456 /usr/lib/other
7f0000002000-7f0000003000 r--p 00000000 08:01 124 /opt/my node/proofmesh (deleted)
`)
	got, err := executableRanges(maps, "/usr/bin/proofmesh")
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0xc00000}, {0xc00000, 0x1400000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %x, want %x (the writable data segment, anonymous and other files left out)", got, want)
	}
	// A path with a space, replaced on disk since it started.
	got, err = executableRanges(maps, "/opt/my node/proofmesh")
	if err != nil || len(got) != 1 || got[0] != (addrRange{0x7f0000002000, 0x7f0000003000}) {
		t.Fatalf("path with a space, deleted: got %x, %v", got, err)
	}
	if _, err := executableRanges(maps, "/nowhere"); err == nil {
		t.Fatal("no mapping of the executable: want an error")
	}
	if _, err := executableRanges([]byte("zz-yy r-xp 0 0:0 1 /x\n"), "/x"); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed line: got %v, want an error naming it", err)
	}
}
