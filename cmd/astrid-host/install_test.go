package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host/store"
)

// TestListCommand: list shows each installed capsule's integrity, escapes what meta.json says
// (anyone who can write the store decides it) in the table and the JSON, and reports what it
// recovered from an interrupted install first.
func TestListCommand(t *testing.T) {
	state := t.TempDir()
	for _, name := range []string{"good", "evil"} {
		dir := filepath.Join(t.TempDir(), name)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.MkdirAll(dir, 0o755))
		must(os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte("[package]\nname = \""+name+"\"\nversion = \"1.0.0\"\n[[component]]\nfile = \"m.wasm\"\n"), 0o644))
		must(os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644))
		if _, err := store.Install(state, dir, store.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	evil := store.CapsuleDir(state, "evil")
	meta, err := store.ReadMeta(evil)
	if err != nil {
		t.Fatal(err)
	}
	meta.Version, meta.Source, meta.WasmHash = "1.0.0\x1b]0;pwned\x07", "/x\n\x1b[2Jfake row", "00"
	if err := store.WriteMeta(evil, meta); err != nil {
		t.Fatal(err)
	}
	// An interrupted first install of another capsule.
	if err := os.MkdirAll(filepath.Join(store.Dir(state), ".stage-half"), 0o755); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if code := run([]string{"list", "--state", state}, nil, &out, &errb); code != exitOK {
		t.Fatalf("list: exit %d, stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "note: removed what an interrupted install or uninstall left: .stage-half") {
		t.Fatalf("stderr: %q", errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || strings.ContainsAny(out.String(), "\x1b\x07") ||
		!strings.Contains(lines[1], "MODIFIED (hash mismatch)") || !strings.Contains(lines[2], "verified blake3:") {
		t.Fatalf("table:\n%q", out.String())
	}

	out.Reset()
	if code := run([]string{"list", "--state", state, "--json"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("list --json: exit %d", code)
	}
	var rows []listRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Fatalf("json: %v\n%q", err, out.String())
	}
	if len(rows) != 2 || rows[0].Name != "evil" || rows[0].Integrity != integrityModified || rows[0].Version != meta.Version || rows[1].Integrity != integrityVerified {
		t.Fatalf("rows: %+v", rows)
	}
}
