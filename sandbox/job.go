package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing/fstest"

	"github.com/tetratelabs/wazero"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	wsys "github.com/tetratelabs/wazero/sys"
)

// Guest paths of a job's files.
const (
	InDir  = "/in"  // input files, read-only
	OutDir = "/out" // output files, collected after exit
)

// maxOutEntries bounds the files and directories a guest may create
// under /out.
const maxOutEntries = 1024

// Job is what a run sees besides stdin: arguments, environment, read-only
// input files under /in, and the files under /out collected after it
// exits. The zero Job is a bare command: argv ["task"], no environment, no
// file system.
type Job struct {
	Args []string          // argv[1:]; argv[0] is "task"
	Env  map[string]string // the environment
	// Files maps paths under /in to their content, mounted read-only.
	Files map[string][]byte
	// Outputs are paths under /out collected after a normal exit; a path
	// the guest did not write is absent from the result.
	Outputs []string
	// MaxOutBytes bounds what the guest may write under /out, all files
	// together (writes past it fail with EIO); 0 mounts no /out.
	MaxOutBytes int64
}

// ErrBadJob is a job that cannot be run: a path outside its directory, a
// malformed environment variable.
var ErrBadJob = errors.New("sandbox: invalid job")

// CheckJobPath refuses a path that is not a clean path of a file below
// dir ("/in" or "/out"): no "..", no empty or trailing segments.
func CheckJobPath(dir, p string) error {
	rel, ok := strings.CutPrefix(p, dir+"/")
	if !ok || rel == "" || path.Clean(p) != p || !fs.ValidPath(rel) {
		return fmt.Errorf("%w: path %q is not a file path under %s", ErrBadJob, p, dir)
	}
	return nil
}

// validate checks the job's paths and environment.
func (j *Job) validate() error {
	for p := range j.Files {
		if err := CheckJobPath(InDir, p); err != nil {
			return err
		}
	}
	for _, p := range j.Outputs {
		if err := CheckJobPath(OutDir, p); err != nil {
			return err
		}
	}
	for k := range j.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: environment variable name %q", ErrBadJob, k)
		}
	}
	if j.MaxOutBytes < 0 || (len(j.Outputs) > 0 && j.MaxOutBytes == 0) {
		return fmt.Errorf("%w: outputs need a positive MaxOutBytes", ErrBadJob)
	}
	return nil
}

// configure adds the job to a module config; the returned function
// collects the outputs (after a normal exit) and cleanup removes /out's
// host directory.
func (j *Job) configure(mcfg wazero.ModuleConfig) (_ wazero.ModuleConfig, collect func() (map[string][]byte, error), cleanup func(), err error) {
	mcfg = mcfg.WithArgs(append([]string{"task"}, j.Args...)...)
	keys := make([]string, 0, len(j.Env))
	for k := range j.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a deterministic environment order
	for _, k := range keys {
		mcfg = mcfg.WithEnv(k, j.Env[k])
	}
	collect, cleanup = func() (map[string][]byte, error) { return nil, nil }, func() {}
	if len(j.Files) == 0 && j.MaxOutBytes == 0 {
		return mcfg, collect, cleanup, nil
	}
	fsc := wazero.NewFSConfig()
	if len(j.Files) > 0 {
		in := fstest.MapFS{}
		for p, c := range j.Files {
			in[strings.TrimPrefix(p, InDir+"/")] = &fstest.MapFile{Data: c, Mode: 0o444}
		}
		fsc = fsc.WithFSMount(in, InDir)
	}
	if j.MaxOutBytes > 0 {
		dir, err := os.MkdirTemp("", "proofmesh-out-")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sandbox: /out: %w", err)
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
		q := &quota{bytes: j.MaxOutBytes, entries: maxOutEntries}
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(&outFS{FS: sysfs.DirFS(dir), q: q}, OutDir)
		collect = func() (map[string][]byte, error) { return j.collect(dir) }
	}
	return mcfg.WithFSConfig(fsc), collect, cleanup, nil
}

// collect reads the declared outputs from /out's host directory: regular
// files only, never through a link.
func (j *Job) collect(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, p := range j.Outputs {
		host := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, OutDir+"/")))
		fi, err := os.Lstat(host)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox: output %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() || fi.Size() > j.MaxOutBytes {
			continue
		}
		f, err := os.Open(host)
		if err != nil {
			return nil, fmt.Errorf("sandbox: output %s: %w", p, err)
		}
		b, err := io.ReadAll(io.LimitReader(f, j.MaxOutBytes+1))
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("sandbox: output %s: %w", p, err)
		}
		out[p] = b
	}
	return out, nil
}

// errQuota is what a write past /out's quota fails with (WASI preview 1
// as wazero exposes it has no ENOSPC).
const errQuota = experimentalsys.EIO

// quota is what a guest may still write under /out.
type quota struct {
	mu      sync.Mutex
	bytes   int64
	entries int
}

func (q *quota) take(n int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n > q.bytes {
		return false
	}
	q.bytes -= n
	return true
}

func (q *quota) entry() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.entries == 0 {
		return false
	}
	q.entries--
	return true
}

// outFS is /out: a per-run host directory under a byte and entry quota,
// with no links, whose metadata (times, inode and device numbers) reads
// the same on every machine, so that replicas stay deterministic.
type outFS struct {
	experimentalsys.FS
	q *quota
}

func (f *outFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if flag&experimentalsys.O_CREAT != 0 {
		if _, errno := f.FS.Lstat(p); errno == experimentalsys.ENOENT && !f.q.entry() {
			return nil, errQuota
		}
	}
	file, errno := f.FS.OpenFile(p, flag|experimentalsys.O_NOFOLLOW, perm)
	if errno != 0 {
		return nil, errno
	}
	return &outFile{File: file, q: f.q}, 0
}

func (f *outFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	if !f.q.entry() {
		return errQuota
	}
	return f.FS.Mkdir(p, perm)
}

func (f *outFS) Stat(p string) (wsys.Stat_t, experimentalsys.Errno) {
	st, errno := f.FS.Stat(p)
	return stable(st), errno
}

func (f *outFS) Lstat(p string) (wsys.Stat_t, experimentalsys.Errno) {
	st, errno := f.FS.Lstat(p)
	return stable(st), errno
}

// Links would let a guest reach beyond /out or dodge the quota.
func (f *outFS) Link(string, string) experimentalsys.Errno    { return experimentalsys.EPERM }
func (f *outFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }
func (f *outFS) Utimens(string, int64, int64) experimentalsys.Errno {
	return experimentalsys.EPERM
}

// stable zeroes what differs between machines.
func stable(st wsys.Stat_t) wsys.Stat_t {
	st.Dev, st.Ino, st.Atim, st.Mtim, st.Ctim = 0, 0, 0, 0, 0
	return st
}

// outFile counts what the guest writes against the quota.
type outFile struct {
	experimentalsys.File
	q *quota
}

func (f *outFile) Write(b []byte) (int, experimentalsys.Errno) {
	if !f.q.take(int64(len(b))) {
		return 0, errQuota
	}
	return f.File.Write(b)
}

func (f *outFile) Pwrite(b []byte, off int64) (int, experimentalsys.Errno) {
	if !f.q.take(int64(len(b))) {
		return 0, errQuota
	}
	return f.File.Pwrite(b, off)
}

func (f *outFile) Truncate(size int64) experimentalsys.Errno {
	if !f.q.take(size) { // a sparse file still counts
		return errQuota
	}
	return f.File.Truncate(size)
}

func (f *outFile) Stat() (wsys.Stat_t, experimentalsys.Errno) {
	st, errno := f.File.Stat()
	return stable(st), errno
}

func (f *outFile) Ino() (wsys.Inode, experimentalsys.Errno) { return 0, 0 }
func (f *outFile) Dev() (uint64, experimentalsys.Errno)     { return 0, 0 }

func (f *outFile) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	ds, errno := f.File.Readdir(n)
	for i := range ds {
		ds[i].Ino = 0
	}
	return ds, errno
}

func (f *outFile) Utimens(int64, int64) experimentalsys.Errno { return experimentalsys.EPERM }
