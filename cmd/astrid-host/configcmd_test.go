package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host/envconfig"
	"github.com/astrid-go/astrid/host/secretstore"
	"github.com/astrid-go/astrid/host/store"
)

// weatherToml declares one [env] key of each kind (and a description with a terminal escape).
const weatherToml = `
[package]
name = "weather"
version = "0.1.0"

[[component]]
file = "m.wasm"

[env]
api_key = { type = "secret", request = "Your API key", description = "From the dashboard\u001b[31m", placeholder = "sk-..." }
network = { type = "string", enum_values = ["testnet", "mainnet"], default = "testnet" }
region = { type = "string", enum_values = ["eu"] }
units = { type = "string", default = "metric" }
hosts = { type = "array" }
`

// writeCapsule writes a capsule with the given Capsule.toml (and the smallest valid module) to dir.
func writeCapsule(t *testing.T, dir, toml string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// squeeze collapses runs of spaces, so that table rows compare whatever their column widths.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func runConfig(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = configCommand(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestConfigCommand: show, set, unset, the key and enum checks, installed and development
// capsules, masking of secrets, a malformed file.
func TestConfigCommand(t *testing.T) {
	state := t.TempDir()
	dev := writeCapsule(t, filepath.Join(t.TempDir(), "weather"), weatherToml)
	writeCapsule(t, store.CapsuleDir(state, "weather"), weatherToml)
	const secret = "sk-TOPSECRET-1234"
	steps := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings
		stderr   []string
		noSecret bool
	}{
		{name: "show, nothing saved", args: []string{"--state", state, "weather"}, stdout: []string{
			"capsule weather (values saved in " + envconfig.Path(state, "weather") + ")",
			"api_key  -        missing (secret)",
			`hosts    -        missing (a JSON array, e.g. '["a","b"]')`,
			"network  -        missing (one of: testnet, mainnet)",
			"region   -        missing (one of: eu)",
			"units    metric   default",
			"4 missing: set with 'astrid-host config weather KEY=VALUE'",
		}},
		{name: "unknown key", args: []string{"--state", state, "weather", "colour=red"}, code: exitUsage,
			stderr: []string{`"colour" is not an [env] key of capsule weather; its keys are: api_key, hosts, network, region, units`}},
		{name: "enum value", args: []string{"--state", state, "weather", "network=devnet"}, code: exitUsage,
			stderr: []string{`network: "devnet" is not one of its values: "testnet", "mainnet"`}},
		{name: "not KEY=VALUE", args: []string{"--state", state, "weather", "units=si", "bogus"}, code: exitUsage,
			stderr: []string{`"bogus" is not KEY=VALUE`}},
		{name: "set", args: []string{"--state", state, "weather", "api_key=" + secret, "network=mainnet", "units=imperial"},
			stdout: []string{"updated api_key, network, units of capsule weather in " + envconfig.Path(state, "weather")}, noSecret: true},
		{name: "show masks the secret", args: []string{"--state", state, "weather"}, noSecret: true, stdout: []string{
			"api_key  ********  saved", "network  mainnet   saved", "units    imperial  saved", "2 missing",
		}},
		{name: "unset", args: []string{"--state", state, "weather", "--unset", "units"}, stdout: []string{"updated units"}},
		{name: "unset falls back to the default", args: []string{"--state", state, "weather"}, stdout: []string{"units    metric    default"}},
		{name: "development capsule shares the file", args: []string{"--state", state, "--dir", dev}, noSecret: true, stdout: []string{"network  mainnet   saved"}},
		{name: "development capsule with its name", args: []string{"--state", state, "--dir", dev, "weather", "region=eu"}, stdout: []string{"updated region"}},
		{name: "development capsule of another name", args: []string{"--state", state, "--dir", dev, "forecast"}, code: exitUsage,
			stderr: []string{"holds capsule weather, not forecast"}},
		{name: "not installed", args: []string{"--state", state, "forecast"}, code: exitUsage,
			stderr: []string{"capsule forecast is not installed in " + store.Dir(state) + " (installed: weather); for a development capsule, pass its directory with --dir CAPSULE_DIR"}},
		{name: "a path is not a name", args: []string{"--state", state, "../weather"}, code: exitUsage, stderr: []string{`"../weather" is not a capsule name`}},
		{name: "no name", args: []string{"--state", state}, code: exitUsage, stderr: []string{"want the NAME of an installed capsule, or --dir CAPSULE_DIR"}},
		{name: "prompt without a terminal", args: []string{"--state", state, "weather", "--prompt"}, code: exitUsage, stderr: []string{"--prompt needs a terminal"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, stdout, stderr := runConfig(st.args...)
			if code != st.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, st.code, stdout, stderr)
			}
			for _, want := range st.stdout {
				if !strings.Contains(squeeze(stdout), squeeze(want)) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range st.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stdout+stderr, secret) || strings.Contains(stdout+stderr, "TOPSECRET") {
				t.Errorf("the secret was printed:\n%s%s", stdout, stderr)
			}
			if strings.ContainsRune(stdout+stderr, 0x1b) {
				t.Errorf("a terminal escape from the manifest reached the output")
			}
		})
	}
	saved, err := readSaved(t, state, "weather")
	if err != nil || saved["api_key"] != secret || saved["network"] != "mainnet" || saved["region"] != "eu" || len(saved) != 3 {
		t.Fatalf("saved %v, %v", saved, err)
	}

	t.Run("stale saved key", func(t *testing.T) {
		data := []byte(`{"api_key": "x", "old": "1"}`)
		if err := os.WriteFile(envconfig.Path(state, "weather"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, _ := runConfig("--state", state, "weather")
		if code != exitOK || !strings.Contains(stdout, "note: the saved keys old are not [env] keys of weather and are ignored; remove them with --unset KEY") {
			t.Fatalf("exit %d:\n%s", code, stdout)
		}
		if code, _, stderr := runConfig("--state", state, "weather", "--unset", "old"); code != exitOK {
			t.Fatalf("unset a stale key: exit %d: %s", code, stderr)
		}
	})
	t.Run("malformed file", func(t *testing.T) {
		if err := os.WriteFile(envconfig.Path(state, "weather"), []byte(`{"units": 3}`), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"--state", state, "weather"}, {"--state", state, "weather", "units=si"}} {
			code, _, stderr := runConfig(args...)
			if code != exitFailure || !strings.Contains(stderr, envconfig.Path(state, "weather")+` has a value for "units" that is a number, not a string`) {
				t.Fatalf("%v: exit %d: %s", args, code, stderr)
			}
		}
	})
}

// readSaved is a capsule's saved configuration with its secrets (from the secret store, where
// the secret api_key must be, never in the configuration file).
func readSaved(t *testing.T, state, name string) (map[string]string, error) {
	t.Helper()
	saved, err := envconfig.Read(state, name)
	if err != nil {
		return nil, err
	}
	if _, ok := saved["api_key"]; ok {
		t.Errorf("the secret api_key is in the configuration file %s", envconfig.Path(state, name))
	}
	secrets, err := secretstore.All(state, name)
	if err != nil {
		return nil, err
	}
	if saved == nil {
		saved = map[string]string{}
	}
	for k, v := range secrets {
		saved[k] = v
	}
	return saved, nil
}
