package tests

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestEmbedExample builds examples/embed, the Go program that embeds the host package, and runs
// it on the hello capsule: the embedding API's documented steps load a capsule and call it.
func TestEmbedExample(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "embed")
	if err := goBuild([]string{"CGO_ENABLED=0"}, "-o", bin, "./examples/embed"); err != nil {
		t.Fatalf("%v\n%s", err, buildLogs.String())
	}
	tests := []struct {
		name, export, input, want string
		code                      int
	}{
		{"greet", "greet", "embedder", "Hello, embedder!\n", 0},
		{"no such export", "nope", "", "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-shim", shimBin, "-state", t.TempDir(), capsules["hello"], tc.export, tc.input)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.code || out.String() != tc.want {
				t.Fatalf("exit %d (want %d), stdout %q (want %q), err %v, stderr:\n%s", code, tc.code, out.String(), tc.want, err, errb.String())
			}
		})
	}
}
