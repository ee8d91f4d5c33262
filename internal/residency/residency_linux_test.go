//go:build linux

package residency

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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

// mapFile writes size bytes of fill to a file on disk, writes it back
// (reclaim skips dirty file pages), and maps it privately with prot,
// touching every page, as start-up leaves the executable's code.
func mapFile(t *testing.T, size int, fill byte, prot int) (mem []byte, path string) {
	t.Helper()
	dir := t.TempDir()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Type == 0x01021994 { // TMPFS_MAGIC
		t.Skip("the temp dir is tmpfs: its pages are memory, not a file to page back in from")
	}
	path = filepath.Join(dir, "code")
	if err := os.WriteFile(path, bytes.Repeat([]byte{fill}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	mem, err = syscall.Mmap(int(f.Fd()), 0, size, prot, syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	touch(mem)
	return mem, path
}

// sink keeps the compiler from dropping touch's reads when a caller
// ignores the sum.
var sink byte

// touch reads every page of mem.
func touch(mem []byte) (sum byte) {
	for i := 0; i < len(mem); i += 4096 {
		sum += mem[i]
	}
	sink = sum
	return sum
}

func rangeOf(mem []byte, clean bool) addrRange {
	addr := uintptr(unsafe.Pointer(&mem[0]))
	return addrRange{start: addr, end: addr + uintptr(len(mem)), clean: clean}
}

func releaseOrSkip(t *testing.T, r addrRange) {
	t.Helper()
	if _, err := release([]addrRange{r}); errors.Is(err, ErrUnsupported) {
		t.Skipf("kernel without MADV_PAGEOUT: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// A read-only private mapping of a file on disk, every page touched:
// releasing it must take it out of the resident set, and its contents
// must come back unchanged. (The test binary itself is too small to show
// it: the kernel caches a small file in a few large folios that straddle
// its mappings, and pages out only folios a range covers whole.)
func TestReleaseDropsResidentFilePages(t *testing.T) {
	const size = 16 << 20
	mem, _ := mapFile(t, size, 0xc3, syscall.PROT_READ)
	sum := touch(mem)
	r := rangeOf(mem, true)
	before := mappingRSS(t, r.start)
	releaseOrSkip(t, r)
	after := mappingRSS(t, r.start)
	t.Logf("resident %d KiB -> %d KiB", before, after)
	if before < size/1024/2 {
		t.Fatalf("only %d KiB of the %d KiB touched were resident before", before, size/1024)
	}
	if after*4 > before {
		t.Errorf("resident %d KiB -> %d KiB, want a quarter or less left", before, after)
	}
	if touch(mem) != sum || mem[size-1] != 0xc3 {
		t.Fatal("the mapping's contents changed")
	}
}

// helperEnv names the file a helper process maps (TestHelperMapsFile).
const helperEnv = "RESIDENCY_TEST_MAP_FILE"

// TestHelperMapsFile is not a test: run by TestReleaseUnmapsPagesOthersShare
// as another process, it maps the file named in $RESIDENCY_TEST_MAP_FILE,
// touches every page, says "mapped", and holds the mapping until its stdin
// closes.
func TestHelperMapsFile(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("run by TestReleaseUnmapsPagesOthersShare")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	touch(mem)
	os.Stdout.WriteString("mapped\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	fmt.Printf("still resident: %d KiB\n", mappingRSS(t, rangeOf(mem, true).start))
}

// Another process mapping the same file stands for another node process of
// the same binary: the kernel pages out no page another process maps, but
// releasing still takes the pages out of this process's resident set, and
// the other keeps them.
func TestReleaseUnmapsPagesOthersShare(t *testing.T) {
	const size = 8 << 20
	mine, path := mapFile(t, size, 0x90, syscall.PROT_READ)
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperMapsFile$")
	helper.Env = append(os.Environ(), helperEnv+"="+path)
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "mapped" {
		t.Fatalf("helper: %q", out.Text())
	}
	r := rangeOf(mine, true)
	before := mappingRSS(t, r.start)
	releaseOrSkip(t, r)
	after := mappingRSS(t, r.start)
	stdin.Close()
	var rest strings.Builder
	for out.Scan() {
		rest.WriteString(out.Text() + "\n")
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, rest.String())
	}
	t.Logf("mine %d KiB -> %d KiB; the other process: %s", before, after, rest.String())
	if after*4 > before {
		t.Errorf("mine: resident %d KiB -> %d KiB, want a quarter or less left", before, after)
	}
	if !strings.Contains(rest.String(), fmt.Sprintf("still resident: %d KiB", size/1024)) {
		t.Errorf("the other process lost pages it maps: %s", rest.String())
	}
	if mine[0] != 0x90 || mine[size-1] != 0x90 {
		t.Fatal("the mapping's contents changed")
	}
}

// A mapping that holds a page of its own (written copy-on-write, as a
// debugger's breakpoint in the code) must keep it: it is paged out at
// most, never discarded.
func TestReleaseKeepsCopyOnWritePages(t *testing.T) {
	const size = 4 << 20
	mem, _ := mapFile(t, size, 0x01, syscall.PROT_READ|syscall.PROT_WRITE)
	mem[4096] = 0xcc
	releaseOrSkip(t, rangeOf(mem, false))
	if mem[4096] != 0xcc {
		t.Fatal("a copy-on-write page of a mapping that is not clean was discarded")
	}
	if mem[0] != 0x01 {
		t.Fatal("the mapping's contents changed")
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
Rss:                 724 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00c00000-01400000 r--p 00800000 08:01 123 /usr/bin/proofmesh
Anonymous:             4 kB
01400000-01500000 rw-p 01000000 08:01 123 /usr/bin/proofmesh
Anonymous:             0 kB
01500000-01600000 rw-p 00000000 00:00 0
Anonymous:             0 kB
7f0000000000-7f0000001000 r--p 00000000 08:01 456 /usr/lib/other
Anonymous:             0 kB
7f0000002000-7f0000003000 r--p 00000000 08:01 124                        /opt/my  node/proofmesh (deleted)
`)
	got, err := executableRanges(maps, "/usr/bin/proofmesh")
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0xc00000, true}, {0xc00000, 0x1400000, false}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v (the writable data segment, anonymous memory and other files left out; a copy-on-write page makes a mapping not clean)", got, want)
	}
	// A path with two spaces in a row, replaced on disk since it started.
	got, err = executableRanges(maps, "/opt/my  node/proofmesh")
	// No Anonymous line: not known to be clean.
	if err != nil || len(got) != 1 || got[0] != (addrRange{0x7f0000002000, 0x7f0000003000, false}) {
		t.Fatalf("path with a space, deleted: got %+v, %v", got, err)
	}
	if _, err := executableRanges(maps, "/nowhere"); err == nil {
		t.Fatal("no mapping of the executable: want an error")
	}
	if _, err := executableRanges([]byte("zz-yy r-xp 0 0:0 1 /x\n"), "/x"); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed line: got %v, want an error naming it", err)
	}
}

// FuzzExecutableRanges: whatever smaps holds, the parser returns an error
// or ranges that are non-empty and of the executable's read-only mappings.
func FuzzExecutableRanges(f *testing.F) {
	f.Add([]byte("00400000-00c00000 r-xp 00000000 08:01 123 /x\nAnonymous: 0 kB\n"), "/x")
	f.Add([]byte("00400000-00c00000 r-xp 00000000 08:01 123       /a  b (deleted)\nAnonymous: 4 kB\n00c00000-00d00000 rw-p 0 0:0 1 /a  b\n"), "/a  b")
	f.Add([]byte("zz-yy r-xp 0 0:0 1 /x\n"), "/x")
	f.Fuzz(func(t *testing.T, smaps []byte, exe string) {
		got, err := executableRanges(smaps, exe)
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatal("no error and no range")
		}
		for _, r := range got {
			if r.end <= r.start {
				t.Fatalf("empty or inverted range %+v", r)
			}
		}
	})
}
