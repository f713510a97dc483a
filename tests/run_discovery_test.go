package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/astrid-go/astrid/host/store"
)

// installAt copies the capsule directory src into dst and writes its meta.json as install
// would: the installed version and the BLAKE3 hash of its module.
func installAt(t *testing.T, src, dst, wasmName, version string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wasm, err := os.ReadFile(filepath.Join(dst, wasmName))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := json.Marshal(store.Meta{Version: version, InstalledAt: store.Now(), UpdatedAt: store.Now(), WasmHash: store.Hash(wasm)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, store.MetaName), meta, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunDiscovery: `astrid-host run` with no PATH runs the store's capsules, then the
// workspace's .astrid/capsules; a capsule whose name the store already has is skipped with a
// warning naming both places; the workspace's consumer of the store's export starts after it.
// With nothing installed it says where it looked.
func TestRunDiscovery(t *testing.T) {
	state, ws := t.TempDir(), t.TempDir()
	storeHello := filepath.Join(store.Dir(state), "hello")
	installAt(t, capsules["hello"], storeHello, "hello.wasm", "0.1.0")
	wsDir := filepath.Join(ws, ".astrid", "capsules")
	installAt(t, capsules["hello"], filepath.Join(wsDir, "hello"), "hello.wasm", "0.2.0")
	// aconsumer sorts first in the workspace, and imports what provider (installed in the
	// store after it, by name) exports.
	installAt(t, watCapsule(t, "aconsumer", echoWAT, "[imports.demo]\nsvc = \"^1\"\n"), filepath.Join(wsDir, "aconsumer"), "aconsumer.wasm", "0.1.0")
	installAt(t, watCapsule(t, "provider", echoWAT, "[exports.demo]\nsvc = \"1.4.0\"\n"), filepath.Join(store.Dir(state), "provider"), "provider.wasm", "0.1.0")

	run := startRun(t, "--state", state, "--workspace", ws)
	log := run.logText()
	if len(run.pids) != 3 || run.pids["hello"] == 0 || run.pids["provider"] == 0 || run.pids["aconsumer"] == 0 {
		t.Fatalf("want hello, provider and aconsumer loaded, got %v; log:\n%s", run.pids, log)
	}
	for _, want := range []string{
		"astrid-host.hello: capsule state: state=loading dir=" + storeHello,
		"capsule skipped: a capsule of this name was found first: capsule=hello skipped=" + filepath.Join(wsDir, "hello") +
			` skipped_from="the workspace (` + wsDir + `)" loaded=` + storeHello + ` loaded_from="the store (` + store.Dir(state) + `)"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	ready := strings.Index(log, "astrid-host.provider: capsule state: state=ready")
	loading := strings.Index(log, "astrid-host.aconsumer: capsule state: state=loading")
	if ready < 0 || loading < ready {
		t.Errorf("aconsumer started (log offset %d) before provider was ready (%d):\n%s", loading, ready, log)
	}
	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.wait(t, runShutdownBound); err != nil {
		t.Fatalf("astrid-host run after SIGTERM: %v; log:\n%s", err, run.logText())
	}

	t.Run("nothing installed", func(t *testing.T) {
		empty, ws := t.TempDir(), t.TempDir()
		res := runCLI(t, empty, "run", "--workspace", ws)
		want := "error: no capsule to run: " + store.Dir(empty) + " and " + filepath.Join(ws, ".astrid/capsules") + " hold none"
		if res.code != 2 || !strings.Contains(res.stderr, want) {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", res.code, res.stderr, want)
		}
	})
}
