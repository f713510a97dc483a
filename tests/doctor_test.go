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
	want := 0
	if sandbox.Probe(hostBin).CheckPolicy(sandbox.Required) != nil {
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
