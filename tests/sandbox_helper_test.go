package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/sandbox"
)

// TestSandboxHelperPinned: astrid-sandbox, the helper every sandboxed shim starts through, is
// pinned as the shim is. A helper replaced after the host verified it (here by a script that
// leaves a mark when it runs) is refused before it is started, with an error naming the helper
// and the change, and the replacement never runs. Without the pin the next shim start would run
// whatever the file then held.
func TestSandboxHelperPinned(t *testing.T) {
	if testSandbox.Policy() == sandbox.Off {
		t.Skip("the sandbox is off on this machine: no helper to pin")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, host.HelperName)
	data, err := os.ReadFile(helperBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	pinned, err := host.VerifyHelper(path)
	if err != nil {
		t.Fatal(err)
	}
	sb := sandbox.New(path, sandbox.BestEffort, sandbox.Probe(path)).WithHelperCheck(pinned.Recheck)
	spec := sandbox.Spec{Path: "/bin/true", Exec: true}
	run := func() error {
		cmd, err := sb.Command(spec)
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			cmd.Close()
			return err
		}
		_, err = cmd.Wait()
		return err
	}
	t.Run("verified helper runs", func(t *testing.T) {
		if err := run(); err != nil {
			t.Fatalf("start through the verified helper: %v", err)
		}
	})
	t.Run("replaced helper is refused", func(t *testing.T) {
		mark := filepath.Join(dir, "ran")
		script := "#!/bin/sh\ntouch " + mark + "\nexit 0\n"
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		err := run()
		if err == nil || !strings.Contains(err.Error(), "sandbox helper "+path+" changed since the host started") {
			t.Fatalf("start through a replaced helper: %v, want an error saying the sandbox helper changed", err)
		}
		if _, err := os.Stat(mark); err == nil {
			t.Fatal("the replaced helper ran")
		}
	})
}
