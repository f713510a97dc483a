package sandbox

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillGroup: killing the group ends the child and the grandchildren it started, which a kill
// of the child's pid alone would leave running.
func TestKillGroup(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & sleep 60 & echo $!; wait")
	cmd.SysProcAttr = ProcessAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := KillGroup(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The grandchild was reparented; once killed it is reaped by init, or lingers as a zombie.
	// SIGKILL is delivered asynchronously, so give it a moment to take effect.
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(grandchild, 0) == nil && !zombie(grandchild); {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived the group kill", grandchild)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := KillGroup(cmd.Process.Pid); err != nil {
		t.Fatalf("killing a group that is gone: %v", err)
	}
	if err := KillGroup(0); err == nil {
		t.Fatal("KillGroup(0) would signal the caller's own group; want an error")
	}
}

// zombie reports whether pid is a zombie (or already gone), from /proc/PID/stat.
func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
