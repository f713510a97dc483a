package sandbox

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// unprivilegedEnv marks the run of the test binary as nobody.
const unprivilegedEnv = "ASTRID_SANDBOX_TEST_UNPRIVILEGED"

// nobody is the uid and gid of the unprivileged run.
const nobody = 65534

// TestUnprivileged: a root host's tests say nothing about a host without privileges, where user
// namespaces do the work root did and the cgroup layer is missing. Run as root, it runs the
// spawning and escape tests again in a copy of the test binary started as nobody; run as anybody
// else, the whole suite already was that.
func TestUnprivileged(t *testing.T) {
	if os.Getenv(unprivilegedEnv) != "" {
		t.Skip("this is the unprivileged run")
	}
	if !isRoot {
		t.Skipf("the whole suite ran unprivileged (uid %d)", os.Getuid())
	}
	// Not t.TempDir: its parent is 0700, closed to nobody.
	tmp, err := os.MkdirTemp("", "astrid-sandbox-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chown(tmp, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testBin, "-test.v", "-test.count=1",
		"-test.run=^(TestProbeReport|TestRun|TestSetupFailure|TestPrivateTmp|TestKillTree|TestIdentity|TestEscape|TestEscapeControl|TestPoolReuse|TestPoolEscape|TestPoolKillAndSignal|TestSpawnerSharedNetwork)$")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, unprivilegedEnv + "=1"}
	cmd.Dir = tmp
	cmd.SysProcAttr = ProcessAttr()
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tests as nobody failed: %v\n%s", err, out)
	}
	// What ran and what was skipped, and why, as nobody.
	var summary []string
	for _, line := range strings.Split(string(out), "\n") {
		if s := strings.TrimSpace(line); strings.HasPrefix(s, "--- ") || strings.Contains(s, "sandbox: cgroup=") {
			summary = append(summary, s)
		}
	}
	if len(summary) == 0 {
		t.Fatalf("the run as nobody ran no test:\n%s", out)
	}
	t.Logf("as nobody:\n%s", strings.Join(summary, "\n"))
}
