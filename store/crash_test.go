package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/proofmesh/proofmesh/protocol"
)

// TestKilledDuringWrites runs a writer in a child process, kills it with
// SIGKILL in the middle of its writes, and checks that the file reopens with
// every acknowledged write and an intact audit chain.
func TestKilledDuringWrites(t *testing.T) {
	if path := os.Getenv("PROOFMESH_STORE_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "proofmesh.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledDuringWrites$")
	cmd.Env = append(os.Environ(), "PROOFMESH_STORE_CRASH_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			continue // test framework output
		}
		if acked = n; acked >= 60 {
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if acked < 60 {
		t.Fatalf("child acknowledged only %d writes", acked)
	}

	db := reopenT(t, path)
	n, err := db.VerifyAudit()
	if err != nil || n < acked {
		t.Fatalf("after kill: VerifyAudit = %d, %v; %d were acknowledged", n, err, acked)
	}
	for i := 1; i <= acked; i++ {
		r, err := db.GetTask(fmt.Sprint("t", i))
		if err != nil || r.State != protocol.StateAssigned {
			t.Fatalf("acknowledged task %d: %+v, %v", i, r.State, err)
		}
	}
}

// crashChild writes until killed: each task creation and its advance with
// an audit entry, then prints the count it has acknowledged.
func crashChild(path string) {
	db, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 1; ; i++ {
		id := fmt.Sprint("t", i)
		if err := db.CreateTask(TaskRecord{Task: protocol.Task{ID: id, Created: int64(i)}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if _, _, err := db.AdvanceAudited(id, protocol.StateAssigned, Event{}, AuditEntry{Kind: "task.assigned", Subject: id}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(i)
	}
}
