package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// The test binary is its own sandbox helper and its own sandboxed programs: TestMain runs
// HelperMain under HelperArg and the programs of testprog_test.go under their "__" names, so the
// tests need no external tool and exercise the same code astrid-host does.

var (
	// testBin is a copy of the test binary in a 0755 directory, reachable by any uid (the go
	// build cache is not, for nobody) and at a path of its own: it is the helper and the program.
	testBin string
	// support is this machine's probe, made once.
	support *Support
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch {
		case os.Args[1] == HelperArg:
			HelperMain(os.Args[2:])
		case strings.HasPrefix(os.Args[1], "__"):
			// Not os.Exit: a race-enabled build sleeps a second in its exit hooks.
			syscall.Exit(testProgram(os.Args[1], os.Args[2:]))
		}
	}
	dir, err := os.MkdirTemp("", "astrid-sandbox-test-")
	if err == nil {
		testBin = filepath.Join(dir, "sandbox.test")
		err = copyExecutable(testBin)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox tests: copy the test binary:", err)
		os.Exit(1)
	}
	support = Probe(testBin)
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox tests: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// copyExecutable copies the running test binary to dst, mode 0755.
func copyExecutable(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// result is how a sandboxed test program ended.
type result struct {
	stdout, stderr string
	exit           Exit
}

// runSpec starts spec through sb, waits for it and returns what it printed and how it ended.
func runSpec(t *testing.T, sb *Sandbox, spec Spec) result {
	t.Helper()
	cmd, err := sb.Command(spec)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	exit, err := cmd.Wait()
	if err != nil {
		t.Fatalf("Wait: %v (stderr: %s)", err, stderr.String())
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), exit: exit}
}

// program is a spec running one of the test programs.
func program(name string, args ...string) Spec {
	return Spec{Path: testBin, Args: append([]string{name}, args...), Env: []string{"ASTRID_TEST=1"}}
}
