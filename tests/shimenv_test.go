package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/sandbox"
	"github.com/astrid-go/astrid/shared"
)

// TestLoadShimRuntimeEnv: every shim starts with the runtime settings of shared.ShimRuntimeEnv
// (GOMAXPROCS=1, TOKIO_WORKER_THREADS=1, GODEBUG=memprofilerate=0,updatemaxprocs=0,profstackdepth=0) in its environment,
// sandboxed or not, whether it was a spare or started for its capsule: set in the environment
// they cost nothing at start-up, where runtime.GOMAXPROCS in main made a P per core and then
// stopped the world to free them, and they are what keeps an idle shim small (see
// BenchmarkIdleMemory).
func TestLoadShimRuntimeEnv(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sb     *sandbox.Sandbox
		spares int
	}{
		{"sandboxed, spare", testSandbox, 1},
		{"sandboxed, no spare", testSandbox, -1},
		{"process layer only", nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, func(c *host.Config) { c.Sandbox, c.SpareShims = tc.sb, tc.spares })
			ctx := context.Background()
			m := mustManifest(t, watCapsule(t, "envcheck", echoWAT, ""))
			if tc.spares > 0 {
				// The first load leaves a spare behind; the second takes it.
				inst, _, err := h.Load(ctx, m, host.LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				inst.Stop(ctx)
				h.WaitSpares()
			}
			inst, _, err := h.Load(ctx, m, host.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Stop(ctx)
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", inst.Pid()))
			if err != nil {
				t.Skipf("reading a shim's environment needs /proc/PID/environ: %v", err)
			}
			var names []string // for the error: the names only (the token's hash is no log's business)
			vars := map[string]bool{}
			for _, v := range bytes.Split(environ, []byte{0}) {
				vars[string(v)] = true
				name, _, _ := strings.Cut(string(v), "=")
				names = append(names, name)
			}
			want := append([]string{"GOMAXPROCS=1", "TOKIO_WORKER_THREADS=1", "GODEBUG=memprofilerate=0,updatemaxprocs=0,profstackdepth=0"}, shared.ShimRuntimeEnv...)
			for _, w := range want {
				if !vars[w] {
					t.Errorf("the shim (pid %d) lacks %q in its environment, which holds %q", inst.Pid(), w, names)
					break
				}
			}
		})
	}
}
