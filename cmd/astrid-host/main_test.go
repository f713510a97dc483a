package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantPos   []string
		wantInput string
	}{
		{"flags first", []string{"--input", "x", "a.wasm", "run"}, []string{"a.wasm", "run"}, "x"},
		{"flags last", []string{"a.wasm", "run", "--input", "x"}, []string{"a.wasm", "run"}, "x"},
		{"flags between", []string{"a.wasm", "--input=x", "run"}, []string{"a.wasm", "run"}, "x"},
		{"double dash", []string{"a.wasm", "--", "--input", "x"}, []string{"a.wasm", "--input", "x"}, ""},
		{"no positionals", []string{"--input", "x"}, nil, "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			input := fs.String("input", "", "")
			pos, err := parseArgs(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(pos, " ") != strings.Join(tc.wantPos, " ") || *input != tc.wantInput {
				t.Fatalf("positionals %q input %q; want %q and %q", pos, *input, tc.wantPos, tc.wantInput)
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	root := t.TempDir()
	capsule := func(name, toml string) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
		// The smallest valid core module: the magic and version 1.
		if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	good := capsule("good", "[package]\nname = \"good\"\nversion = \"1.2.3\"\n[[component]]\nfile = \"m.wasm\"\n")
	bad := capsule("bad", "[package]\nname = \"Bad_Name\"\nversion = \"1.2.3\"\nfrobs = 1\n[[component]]\nfile = \"m.wasm\"\n")

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"no paths", []string{"check"}, exitUsage, nil},
		{"valid capsule", []string{"check", good}, exitOK, []string{"ok: good 1.2.3"}},
		{"invalid capsule", []string{"check", bad}, exitFailure, []string{
			"error: " + filepath.Join(bad, "Capsule.toml") + ":2: package.name:",
			"lowercase alphanumeric characters and hyphens",
			"warning: " + filepath.Join(bad, "Capsule.toml") + ":4: package.frobs:",
		}},
		{"directory of capsules", []string{"check", root}, exitFailure, []string{"ok: good 1.2.3", "error: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := run(tc.args, nil, &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errb.String())
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
