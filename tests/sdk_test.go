package tests

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/shared/pb"
)

// Capsules written with sdk/go: configuration, variables that survive calls and traps, logging and
// HTTP, end to end through real shims.

func TestSDKVariablesAndConfig(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	ctx := context.Background()
	counter, _ := loadCapsule(t, h, "counter")
	stepped, _ := loadCapsule(t, h, "counter", host.LoadOptions{Config: map[string]string{"step": "5"}})
	calls := []struct {
		inst   *host.Instance
		export string
		want   string
	}{
		{counter, "increment", "1"},
		{counter, "increment", "2"},
		{stepped, "increment", "5"}, // another instance: its own variables, its own config
		{counter, "increment", "3"},
		{counter, "reset", "0"},
		{counter, "increment", "1"},
		{stepped, "increment", "10"},
	}
	for i, c := range calls {
		out, err := c.inst.Call(ctx, c.export, nil, 0)
		if err != nil || string(out) != c.want {
			t.Fatalf("call %d (%s): %q, %v; want %q", i, c.export, out, err, c.want)
		}
	}
	bad, _ := loadCapsule(t, h, "counter", host.LoadOptions{Config: map[string]string{"step": "x"}})
	_, err := bad.Call(ctx, "increment", nil, 0)
	var ge *host.GuestError
	if !errors.As(err, &ge) || ge.Kind != pb.GuestError_GUEST_ERROR || !strings.Contains(ge.Message, "step") {
		t.Fatalf("increment with a bad step: %v", err)
	}
}

func TestSDKFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/page" || r.Header.Get("Accept") != "text/html" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("<p>hello from the test server</p>"))
	}))
	defer srv.Close()

	// The demo capsule, allowed to reach the test server instead of example.com.
	dir := t.TempDir()
	wasm, err := os.ReadFile(filepath.Join(capsules["demo"], "demo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	toml := "[package]\nname = \"demo\"\nversion = \"0.1.0\"\n[[component]]\nfile = \"demo.wasm\"\n" +
		"[capabilities]\nnet = [\"127.0.0.1\"]\n[env]\nbase_url = { type = \"string\", default = \"" + srv.URL + "\" }\n"
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	open := newHost(t, func(c *host.Config) { c.AllowPrivateNetwork = true })
	inst, _ := loadCapsule(t, open, dir)
	if out, err := inst.Call(ctx, "fetch", []byte("page"), 0); err != nil || string(out) != "<p>hello from the test server</p>" {
		t.Fatalf("fetch: %q, %v", out, err)
	}
	if _, err := inst.Call(ctx, "fetch", []byte("missing"), 0); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("fetch of a missing page: %v, want the guest's status 404 error", err)
	}
	other, _ := loadCapsule(t, open, dir, host.LoadOptions{Config: map[string]string{"base_url": "http://localhost:1"}})
	if _, err := other.Call(ctx, "fetch", []byte("page"), 0); err == nil ||
		!strings.Contains(err.Error(), `HTTP request to "localhost" is not allowed`) || !strings.Contains(err.Error(), "to allow it, list it in [capabilities] net of ") {
		t.Fatalf("fetch from a host not listed: %v", err)
	}

	closed := newHost(t)
	inst, _ = loadCapsule(t, closed, dir)
	if _, err := inst.Call(ctx, "fetch", []byte("page"), 0); err == nil || !strings.Contains(err.Error(), "DNS resolved to an unauthorized private or local IP address") {
		t.Fatalf("fetch from loopback without --allow-private-network: %v", err)
	}
}
