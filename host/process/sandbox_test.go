package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/astrid-go/astrid/sandbox"
)

// ASTRID_TEST_SANDBOX=required (or best-effort) runs every test of this package under the real
// sandbox, with the test binary as its helper; unset or "off", they run under policy Off.
func init() {
	testHelperMain = func() { sandbox.HelperMain(os.Args) }
	name := os.Getenv("ASTRID_TEST_SANDBOX")
	if name == "" || name == "off" {
		return
	}
	policy, err := sandbox.ParsePolicy(name)
	if err != nil {
		panic(fmt.Sprintf("ASTRID_TEST_SANDBOX: %v", err))
	}
	self, err := os.Executable()
	if err != nil {
		panic(fmt.Sprintf("ASTRID_TEST_SANDBOX: the test binary: %v", err))
	}
	probe := sync.OnceValue(func() *sandbox.Support { return sandbox.Probe(self) })
	newTestSandbox = func() *sandbox.Sandbox { return sandbox.New(self, policy, probe()) }
}

// TestStateDirHidden: with the host's state directory inside the workspace (the default when the
// host runs from $HOME, and make run's bin/state), a spawned process can neither replace a
// cached module there, nor write a new file, nor read it; and a request cannot point its cwd or
// program into it. Under policy Off nothing hides it (only the refusals are checked).
func TestStateDirHidden(t *testing.T) {
	t.Parallel()
	var state string
	e := newEnv(t, func(c *Config) {
		state = filepath.Join(c.Workspace, "bin", "state")
		c.Hidden = []string{state}
		c.Allowed = append(c.Allowed, "bin/state/tool")
	})
	victim := filepath.Join(state, "modules", "victim.cwasm")
	if err := os.MkdirAll(filepath.Dir(victim), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("compiled"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "tool"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("refused requests", func(t *testing.T) {
		_, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "true", Cwd: "bin/state/modules"})
		wantErrContaining(t, err, `invalid cwd "bin/state/modules": it is inside the host's own directory`, "bin/state")
		_, err = e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "bin/state/tool"})
		wantErrContaining(t, err, `"bin/state/tool" is inside the host's own directory`)
	})
	for _, tt := range []struct{ name, script string }{
		{"replace a cached module", `echo poisoned > poison && mv -f poison bin/state/modules/victim.cwasm`},
		{"overwrite a cached module", `echo poisoned > bin/state/modules/victim.cwasm`},
		{"write a new file", `echo x > bin/state/new`},
		{"read a cached module", `cat bin/state/modules/victim.cwasm`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if e.sandbox.Policy() == sandbox.Off {
				t.Skip("policy off hides nothing (ASTRID_TEST_SANDBOX=required runs this)")
			}
			res := e.sh(t, tt.script)
			if res.ExitCode == 0 || strings.Contains(res.Stdout, "compiled") {
				t.Errorf("the process reached the state directory: %+v", res)
			}
		})
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "compiled" {
		t.Errorf("the cached module was changed: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(state, "new")); err == nil {
		t.Error("a file was written in the state directory")
	}
}

// TestMemoryLimit: hole 3 of issue 10. A spawned tree that allocates past Config.MemoryBytes is
// killed by the kernel (the host itself is untouched); the same tree under the limit runs. It
// needs the cgroup layer (a writable cgroup hierarchy: v2 delegated, or v1 as root).
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MemoryBytes = 64 << 20 })
	if !e.hasLayer(t, sandbox.LayerCgroup) {
		t.Skip("the test sandbox gives processes no cgroup (policy off, or no writable cgroup hierarchy: sandbox.Probe says why), so no memory limit")
	}
	// The shell keeps the command substitution's output in its own memory.
	alloc := func(bytes int) string {
		return `x=$(head -c ` + itoa(bytes) + ` /dev/zero | tr '\0' a); echo survived ${#x}`
	}
	under := e.sh(t, alloc(8<<20))
	if under.ExitCode != 0 || under.Stdout != "survived 8388608\n" {
		t.Fatalf("8 MiB under a 64 MiB limit: %+v", under)
	}
	over := e.sh(t, alloc(256<<20))
	if over.ExitCode != -1 || !sameInt(over.Signal, intp(9)) || strings.Contains(over.Stdout, "survived") {
		t.Fatalf("256 MiB under a 64 MiB limit: exit %d signal %v stdout %q; want killed by SIGKILL", over.ExitCode, deref(over.Signal), over.Stdout)
	}
}
