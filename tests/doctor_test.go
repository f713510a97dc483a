package tests

import (
	"strings"
	"testing"

	"github.com/astrid-go/astrid/sandbox"
)

// TestDoctorAndSandboxFlag: doctor reports every layer and agrees with the probe on whether the
// default policy can run; a bad --sandbox value is refused naming the valid ones.
func TestDoctorAndSandboxFlag(t *testing.T) {
	res := runCLI(t, t.TempDir(), "doctor")
	for _, l := range sandbox.Layers() {
		if !strings.Contains(res.stdout, string(l)) {
			t.Errorf("doctor does not report layer %s:\n%s", l, res.stdout)
		}
	}
	// What is capped, exactly as this machine allows: the cgroup limits only with the cgroup layer.
	sup := sandbox.Probe(hostBin)
	for _, row := range []string{"shim memory", "shim tasks", "spawned memory", "spawned tasks"} {
		line := lineWith(res.stdout, "  "+row+" ")
		capped := strings.Contains(line, " capped ") && strings.Contains(line, "(cgroup ")
		uncapped := strings.Contains(line, "NOT capped: no cgroup here (")
		if sup.Available(sandbox.LayerCgroup) && !capped || !sup.Available(sandbox.LayerCgroup) && !uncapped {
			t.Errorf("doctor's %q line does not match the cgroup layer (available %v): %q", row, sup.Available(sandbox.LayerCgroup), line)
		}
	}
	if line := lineWith(res.stdout, "  shim memory "); !strings.Contains(line, "[limits] memory + 1024 MiB") {
		t.Errorf("doctor does not give the shim's memory limit: %q", line)
	}
	if line := lineWith(res.stdout, "  spawned memory "); !strings.Contains(line, "[limits] process_memory, default 2048 MiB") {
		t.Errorf("doctor does not give the spawned trees' memory limit: %q", line)
	}
	want := 0
	if sup.CheckPolicy(sandbox.Required) != nil {
		want = 1
	}
	if res.code != want {
		t.Fatalf("doctor exited %d, want %d:\n%s%s", res.code, want, res.stdout, res.stderr)
	}

	res = runCLI(t, t.TempDir(), "call", "--sandbox", "bogus", capsules["hello"], "greet")
	if res.code != 2 || !strings.Contains(res.stderr, "use required, best-effort or off") {
		t.Fatalf("--sandbox bogus: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, t.TempDir(), "call", "--sandbox", "off", capsules["hello"], "greet", "--input", "x")
	if res.code != 0 || res.stdout != "Hello, x!" {
		t.Fatalf("--sandbox off: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

// lineWith returns the first line of s that contains sub, "" if none.
func lineWith(s, sub string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
