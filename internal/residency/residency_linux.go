//go:build linux

package residency

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// madvPageout is MADV_PAGEOUT (Linux 5.4), the same number on every
	// architecture.
	madvPageout = 21
	// madvDontneed is MADV_DONTNEED: on a private file mapping it drops
	// this process's page table entries; the page cache keeps the pages,
	// and the next touch maps them again.
	madvDontneed = 4
)

// ReleaseStartupPages gives back what start-up alone used:
//
//   - it asks the kernel to page out this process's read-only mappings of
//     its own executable (code, read-only data, the symbol table): clean
//     file pages that only this process maps leave memory;
//   - it then unmaps those mappings' pages from this process, where the
//     mapping holds no page of its own (no copy-on-write page, as a
//     debugger's breakpoint would make): pages that other processes of the
//     same binary map too stay in the page cache for them, and leave this
//     process's resident set;
//   - it returns the Go heap that is free to the system.
//
// Pages the process still uses come back from the page cache, or the
// file, when next touched. Call it once start-up is over. It changes no
// data and is safe at any time; its only cost is the page faults that
// bring used code back.
func ReleaseStartupPages() (Released, error) {
	exe, err := os.Executable()
	if err != nil {
		return Released{}, fmt.Errorf("residency: find the executable: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return Released{}, fmt.Errorf("residency: read /proc/self/smaps: %w", err)
	}
	ranges, err := executableRanges(smaps, exe)
	if err != nil {
		return Released{}, err
	}
	rel, err := release(ranges)
	if err != nil {
		return rel, err
	}
	debug.FreeOSMemory()
	return rel, nil
}

// release pages each range out (MADV_PAGEOUT), then unmaps from this
// process (MADV_DONTNEED) each clean range: dropping its page table
// entries loses nothing, since every page in it is the file's.
func release(ranges []addrRange) (Released, error) {
	var rel Released
	for _, r := range ranges {
		if err := madvise(r, madvPageout); err != nil {
			if errors.Is(err, syscall.EINVAL) && rel.Mappings == 0 {
				return rel, fmt.Errorf("%w (%v)", ErrUnsupported, err)
			}
			return rel, err
		}
		if r.clean {
			if err := madvise(r, madvDontneed); err != nil {
				return rel, err
			}
		}
		rel.Mappings++
		rel.Bytes += uint64(r.end - r.start)
	}
	return rel, nil
}

func madvise(r addrRange, advice uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.start, r.end-r.start, advice); errno != 0 {
		return fmt.Errorf("residency: madvise(%#x-%#x, %d): %w", r.start, r.end, advice, errno)
	}
	return nil
}

type addrRange struct {
	start, end uintptr
	// clean: smaps says the mapping holds no anonymous (copy-on-write)
	// page, so every page in it is the file's.
	clean bool
}

// executableRanges returns the read-only (not writable) mappings of the
// file exe in a /proc/<pid>/smaps listing, each marked clean if smaps
// lists no anonymous page in it.
// Writable mappings (the data segment) are left alone: their written
// pages are the process's own.
func executableRanges(smaps []byte, exe string) ([]addrRange, error) {
	var out []addrRange
	in := false
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header: address perms offset dev inode [path]
			in = false
			if len(f) < 6 {
				continue
			}
			path := strings.TrimSuffix(headerPath(line), " (deleted)")
			if path != exe || strings.Contains(f[1], "w") {
				continue
			}
			lo, hi, ok := strings.Cut(f[0], "-")
			if !ok {
				return nil, fmt.Errorf("residency: malformed smaps line %q", line)
			}
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err := errors.Join(err1, err2); err != nil || end <= start {
				return nil, fmt.Errorf("residency: malformed smaps line %q", line)
			}
			out = append(out, addrRange{start: uintptr(start), end: uintptr(end)})
			in = true
			continue
		}
		if in && f[0] == "Anonymous:" && len(f) >= 2 {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("residency: malformed smaps line %q", line)
			}
			out[len(out)-1].clean = kb == 0
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("residency: read smaps: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("residency: no read-only mapping of %s in /proc/self/smaps", exe)
	}
	return out, nil
}

// headerPath returns the path of a smaps header line as the kernel wrote
// it, spaces within it kept: whatever follows the fifth field (the inode)
// and the blanks after it.
func headerPath(line string) string {
	rest := line
	for range 5 {
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			return ""
		}
		rest = rest[i:]
	}
	return strings.TrimLeft(rest, " \t")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("residency: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
