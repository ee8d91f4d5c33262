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
)

// madvPageout is MADV_PAGEOUT (Linux 5.4), the same number on every
// architecture.
const madvPageout = 21

// ReleaseStartupPages asks the kernel to page out this process's read-only
// mappings of its own executable (code, read-only data, the symbol table)
// and returns the Go heap that is free to the system. Pages the process
// still uses fault back in from the file when next touched; pages other
// processes map too (several nodes of one binary) stay where they are.
//
// Call it once start-up is over. It changes no data and is safe at any
// time; its only cost is the page faults that bring used code back.
func ReleaseStartupPages() (Released, error) {
	exe, err := os.Executable()
	if err != nil {
		return Released{}, fmt.Errorf("residency: find the executable: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return Released{}, fmt.Errorf("residency: read /proc/self/maps: %w", err)
	}
	ranges, err := executableRanges(maps, exe)
	if err != nil {
		return Released{}, err
	}
	rel, err := pageOut(ranges)
	if err != nil {
		return rel, err
	}
	debug.FreeOSMemory()
	return rel, nil
}

// pageOut advises the kernel to page out each range now (MADV_PAGEOUT).
// Clean file pages only this process maps leave memory; the kernel skips
// pages other processes map as well.
func pageOut(ranges []addrRange) (Released, error) {
	var rel Released
	for _, r := range ranges {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.start, r.end-r.start, madvPageout); errno != 0 {
			if errno == syscall.EINVAL && rel.Mappings == 0 {
				return rel, fmt.Errorf("%w (madvise: %v)", ErrUnsupported, errno)
			}
			return rel, fmt.Errorf("residency: madvise %#x-%#x: %w", r.start, r.end, errno)
		}
		rel.Mappings++
		rel.Bytes += uint64(r.end - r.start)
	}
	return rel, nil
}

type addrRange struct{ start, end uintptr }

// executableRanges returns the read-only (not writable) mappings of the
// file exe in a /proc/<pid>/maps listing. Writable mappings (the data
// segment) are left alone: their written pages are the process's own.
func executableRanges(maps []byte, exe string) ([]addrRange, error) {
	var out []addrRange
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		// address perms offset dev inode pathname
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		path := strings.Join(f[5:], " ")
		path = strings.TrimSuffix(path, " (deleted)")
		if path != exe || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("residency: malformed maps line %q", sc.Text())
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err := errors.Join(err1, err2); err != nil || end <= start {
			return nil, fmt.Errorf("residency: malformed maps line %q", sc.Text())
		}
		out = append(out, addrRange{uintptr(start), uintptr(end)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("residency: read /proc/self/maps: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("residency: no read-only mapping of %s in /proc/self/maps", exe)
	}
	return out, nil
}
