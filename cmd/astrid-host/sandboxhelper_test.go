package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// TestSandboxHelperChoice: the CLI's sandbox helper is the astrid-sandbox next to the running
// program when there is one that passes the shim's file rules (and refuses to start with one
// that does not, rather than falling back past it), and the running program itself otherwise.
func TestSandboxHelperChoice(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, err = filepath.EvalSymlinks(self)
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(filepath.Dir(self), host.HelperName)
	if _, err := os.Lstat(next); err == nil {
		t.Skipf("%s already exists next to the test binary", next)
	}
	tests := []struct {
		name     string
		mode     os.FileMode // 0: no file
		want     string
		wantErr  string
		hasCheck bool
	}{
		{name: "none: astrid-host itself", want: self},
		{name: "astrid-sandbox next to it", mode: 0o755, want: next, hasCheck: true},
		{name: "writable by others: refused", mode: 0o757, wantErr: "sandbox helper " + next + " is writable by group or others"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode != 0 {
				if err := os.WriteFile(next, []byte("#!/bin/sh\n"), tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(next, tc.mode); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(next)
			}
			got, check, err := sandboxHelper(hclog.NewNullLogger())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || (check != nil) != tc.hasCheck {
				t.Fatalf("helper %s (check %v), want %s (check %v)", got, check != nil, tc.want, tc.hasCheck)
			}
		})
	}
}
