package tests

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/envconfig"
	"github.com/astrid-go/astrid/host/manifest"
)

// onboardingEnv adds a required secret (no default) and an enum of two values to the raw
// capsule, which already has greeting (default "hello"). It restarts at once after a crash.
const onboardingEnv = `
[env.api_key]
type = "secret"
request = "Your API key"
description = "From the dashboard"
placeholder = "sk-..."

[env.network]
type = "string"
enum_values = ["testnet", "mainnet"]
default = "testnet"

[restart]
policy = "on-failure"
backoff = "10ms"
max_backoff = "20ms"
`

// wantOnboarding is the exact payload of astrid.v1.onboarding.required for onboardingEnv, as
// upstream serialises IpcPayload::OnboardingRequired.
const wantOnboarding = `{"type":"onboarding_required","capsule_id":"raw","fields":[` +
	`{"key":"api_key","prompt":"Your API key","description":"From the dashboard","field_type":"Secret","placeholder":"sk-..."},` +
	`{"key":"network","prompt":"Please enter value for network","field_type":{"Enum":["testnet","mainnet"]},"default":"testnet"}]}`

// getConfig reads key through the raw capsule's astrid_get_config.
func getConfig(t *testing.T, inst *host.Instance, key string) string {
	t.Helper()
	out, err := callRaw(t, inst, "astrid_get_config", []byte(key))
	if err != nil {
		t.Fatalf("astrid_get_config(%s): %v", key, err)
	}
	return string(out)
}

// TestEnvOnboarding: a capsule with a required [env] value and no saved one loads (the guest
// reads "") and the host publishes ONE astrid.v1.onboarding.required event with upstream's
// payload, before the capsule is Ready. After `astrid-host config` saves the values (the built
// binary), the next load of the capsule, here the restart after its shim is killed, gives the
// guest the saved values and publishes no onboarding event.
func TestEnvOnboarding(t *testing.T) {
	checkLeaks(t)
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	onboarding := h.Bus().Subscribe(host.TopicOnboardingRequired)
	defer onboarding.Close()
	ready := h.Bus().Subscribe(host.TopicCapsulePrefix + "ready")
	defer ready.Close()
	restarted := h.Bus().Subscribe(host.TopicCapsuleRestarted)
	defer restarted.Close()
	dir := capsuleVariant(t, "raw", onboardingEnv)

	inst, _ := loadCapsule(t, h, dir)
	env := onboarding.Poll(1 << 20)
	if len(env.Messages) != 1 {
		t.Fatalf("%d onboarding events, want 1: %+v", len(env.Messages), env.Messages)
	}
	msg := env.Messages[0]
	if string(msg.Payload) != wantOnboarding {
		t.Errorf("payload\n got %s\nwant %s", msg.Payload, wantOnboarding)
	}
	if msg.SourceID != "00000000-0000-0000-0000-000000000000" || msg.Principal != "" {
		t.Errorf("source %q principal %q; want the nil source and no principal", msg.SourceID, msg.Principal)
	}
	if r := ready.Poll(1 << 20); len(r.Messages) != 1 || r.Messages[0].Seq < msg.Seq {
		t.Errorf("the capsule was Ready (%+v) before the onboarding event (seq %d)", r.Messages, msg.Seq)
	}
	for key, want := range map[string]string{"api_key": "", "network": "", "greeting": "hello"} {
		if got := getConfig(t, inst, key); got != want {
			t.Errorf("before config: %s = %q, want %q", key, got, want)
		}
	}

	res := runCLI(t, state, "config", "--dir", dir, "api_key=sk-42", "network=mainnet")
	if res.code != 0 {
		t.Fatalf("config: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	show := runCLI(t, state, "config", "--dir", dir)
	if show.code != 0 || strings.Contains(show.stdout+show.stderr, "sk-42") || !strings.Contains(show.stdout, envconfig.Masked) {
		t.Errorf("config shows (exit %d):\n%s%s", show.code, show.stdout, show.stderr)
	}

	if err := syscall.Kill(inst.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Recv(context.Background(), 1<<20); err != nil {
		t.Fatal(err)
	}
	next := current(h, "raw")
	for key, want := range map[string]string{"api_key": "sk-42", "network": "mainnet", "greeting": "hello"} {
		if got := getConfig(t, next, key); got != want {
			t.Errorf("after config and a restart: %s = %q, want %q", key, got, want)
		}
	}
	if env := onboarding.Poll(1 << 20); len(env.Messages) != 0 {
		t.Errorf("onboarding events after the values were saved: %+v", env.Messages)
	}
}

// TestEnvConfigGetSDK: an SDK capsule reads the saved value with config_get (astrid.Config).
func TestEnvConfigGetSDK(t *testing.T) {
	checkLeaks(t)
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	if res := runCLI(t, state, "config", "--dir", capsules["demo"], "greeting=Salut"); res.code != 0 {
		t.Fatalf("config: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	inst, _ := loadCapsule(t, h, "demo")
	out, err := inst.Call(context.Background(), "greet", []byte("world"), 0)
	if err != nil || string(out) != "Salut, world! (call 1)" {
		t.Fatalf("greet: %q, %v", out, err)
	}
}

// TestEnvPrecedence: the value given to the load (call --config) wins over the saved value,
// which wins over the [env] default, through astrid_get_config and config_get alike.
func TestEnvPrecedence(t *testing.T) {
	checkLeaks(t)
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	dir := capsuleVariant(t, "raw", `
[env.units]
type = "string"
default = "metric"

[env.mode]
type = "string"
default = "fast"
`)
	m, _, err := manifest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := envconfig.Update(state, m, map[string]string{"greeting": "saved", "units": "saved"}, nil); err != nil {
		t.Fatal(err)
	}
	inst, _ := loadCapsule(t, h, dir, host.LoadOptions{Config: map[string]string{"greeting": "override"}})
	for key, want := range map[string]string{"greeting": "override", "units": "saved", "mode": "fast"} {
		if got := getConfig(t, inst, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	h.Shutdown(context.Background()) // astrid-host call takes the state directory's KV store
	t.Run("call --config", func(t *testing.T) {
		for key, want := range map[string]string{"greeting": "override", "units": "saved", "mode": "fast"} {
			in, _ := json.Marshal(rawRequest{Fn: "astrid_get_config", Args: [][]byte{[]byte(key)}})
			res := runCLI(t, state, "call", "--sandbox", "best-effort", "--config", "greeting=override", "--input", string(in), dir, "call")
			if res.code != 0 || res.stdout != want {
				t.Errorf("%s: exit %d, stdout %q, want %q; stderr:\n%s", key, res.code, res.stdout, want, res.stderr)
			}
		}
	})
}

// TestEnvBadFile: a saved configuration file that is malformed or larger than
// envconfig.MaxFileBytes fails the capsule's load with an error naming the file and the problem
// (it is never read whole, and never silently ignored); the shim is never started.
func TestEnvBadFile(t *testing.T) {
	checkLeaks(t)
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	m, _, err := manifest.Load(capsules["raw"])
	if err != nil {
		t.Fatal(err)
	}
	path := envconfig.Path(state, "raw")
	if err := os.MkdirAll(envconfig.Dir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		write func() error
		want  string
	}{
		{"malformed", func() error { return os.WriteFile(path, []byte(`{"greeting": 42}`), 0o600) },
			path + ` has a value for "greeting" that is a number, not a string`},
		{"not JSON", func() error { return os.WriteFile(path, []byte(`greeting=hi`), 0o600) },
			path + " is not a JSON object"},
		{"oversize (sparse, 4 GiB)", func() error {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(4 << 30)
		}, path + " is 4294967296 bytes; the limit is 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.write(); err != nil {
				t.Fatal(err)
			}
			inst, _, err := h.Load(context.Background(), m, host.LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load: %v; want %q", err, tc.want)
			}
			if st, reason := inst.State(); st != host.StateFailed || !strings.Contains(reason, tc.want) {
				t.Errorf("state %s (%s); want Failed with the reason", st, reason)
			}
			if inst.Pid() != 0 {
				t.Errorf("a shim was started (pid %d)", inst.Pid())
			}
		})
	}
}
