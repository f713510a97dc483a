package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/elicit"
	"github.com/astrid-go/astrid/host/secretstore"
	"github.com/astrid-go/astrid/host/store"
)

func init() {
	// The capsule whose astrid_install elicits a text, a secret and a select (see its main.go).
	builtCapsules["elicit"] = "tests/testdata/capsules/elicit"
}

// TestElicitRaw: through a real shim, with upstream's encodings: astrid_elicit outside an
// install or upgrade hook traps with upstream's text (and so does a bad request, first);
// astrid_has_secret answers {"exists": bool} from the capsule's own secret store.
func TestElicitRaw(t *testing.T) {
	checkLeaks(t)
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	inst, _ := loadCapsule(t, h, "raw")
	for _, tc := range []struct {
		name, req, want string
	}{
		{"outside a lifecycle hook", `{"type":"text","key":"k"}`, "elicit is only available during #[install] or #[upgrade] lifecycle hooks"},
		{"select without options", `{"type":"select","key":"k","options":[]}`, "select elicit request requires non-empty options"},
		{"unknown type", `{"type":"checkbox","key":"k"}`, "unknown elicit type: checkbox"},
		{"not JSON", `nope`, "invalid elicit request JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := callRaw(t, inst, "astrid_elicit", []byte(tc.req))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("astrid_elicit(%s): %v, want a trap with %q", tc.req, err, tc.want)
			}
		})
	}
	hasSecret := func(key string) string {
		t.Helper()
		out, err := callRaw(t, inst, "astrid_has_secret", []byte(`{"key":"`+key+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if got := hasSecret("api_key"); got != `{"exists":false}` {
		t.Fatalf("has_secret before: %s", got)
	}
	if err := secretstore.Set(state, "raw", map[string]string{"api_key": "x"}); err != nil {
		t.Fatal(err)
	}
	// Another capsule's secret of the same key is not this capsule's.
	if err := secretstore.Set(state, "other", map[string]string{"only_other": "y"}); err != nil {
		t.Fatal(err)
	}
	if got := hasSecret("api_key"); got != `{"exists":true}` {
		t.Fatalf("has_secret after: %s", got)
	}
	if got := hasSecret("only_other"); got != `{"exists":false}` {
		t.Fatalf("has_secret of another capsule's key: %s", got)
	}
	if _, err := callRaw(t, inst, "astrid_has_secret", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "invalid has_secret request JSON") {
		t.Fatalf("has_secret({}): %v", err)
	}
}

// elicitSecret is the secret the install tests give; it must appear nowhere but the secret store.
const elicitSecret = "sk-ELICIT-SECRET-7391"

// checkInstalledElicit checks what the installed elicit capsule read and that the secret is in
// the secret store only: not in kv.db, not in any output.
func checkInstalledElicit(t *testing.T, state, region, tier string, outputs ...string) {
	t.Helper()
	res := runCLI(t, state, "call", "--sandbox", "best-effort", "--log-level", "trace", store.CapsuleDir(state, "elicit"), "show")
	if res.code != 0 {
		t.Fatalf("show: exit %d\n%s", res.code, res.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("show: %v: %q", err, res.stdout)
	}
	want := map[string]any{"region": region, "tier": tier, "had_secret": "false,true", "has_secret": true, "api_key": elicitSecret}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("show: %s = %v, want %v", k, got[k], v)
		}
	}
	if v, ok, err := secretstore.Get(state, "elicit", "api_key"); err != nil || !ok || v != elicitSecret {
		t.Errorf("secret store: %q %v %v", v, ok, err)
	}
	for _, p := range []string{secretstore.Path(state, "elicit"), secretstore.Dir(state)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]os.FileMode{true: 0o700, false: 0o600}[fi.IsDir()]; fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	kv, err := os.ReadFile(filepath.Join(state, "kv.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(kv, []byte(elicitSecret)) {
		t.Errorf("the secret is in kv.db")
	}
	for i, out := range append(outputs, res.stderr) {
		if strings.Contains(out, elicitSecret) {
			t.Errorf("the secret is in output %d:\n%s", i, out)
		}
	}
}

// TestElicitInstallSet: install answers the hook's requests from --set (at trace level, so every
// log line of host and shim is in the output), the capsule then reads them, and the secret is in
// the secret store only. A --set value a select does not allow, and a request no --set answers
// without a terminal, fail the install at once naming the key, and leave the store unchanged.
func TestElicitInstallSet(t *testing.T) {
	install := func(state string, sets ...string) (cliResult, time.Duration) {
		args := []string{"install", "--sandbox", "best-effort", "--log-level", "trace"}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		start := time.Now()
		res := runCLI(t, state, append(args, capsules["elicit"])...)
		return res, time.Since(start)
	}
	t.Run("answered", func(t *testing.T) {
		state := t.TempDir()
		res, _ := install(state, "region=eu", "api_key="+elicitSecret, "tier=pro")
		if res.code != 0 || !strings.Contains(res.stdout, "astrid_install ran") {
			t.Fatalf("install: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
		}
		if !strings.Contains(res.stderr, "published elicit request") {
			t.Errorf("the trace log does not show the elicit requests:\n%s", res.stderr)
		}
		checkInstalledElicit(t, state, "eu", "pro", res.stdout, res.stderr)
	})
	for _, tc := range []struct {
		name string
		sets []string
		want string
	}{
		{"select value not an option", []string{"region=eu", "api_key=" + elicitSecret, "tier=gold"}, `--set tier: "gold" is not one of its options: ["free" "pro"]`},
		{"no terminal and no --set", []string{"region=eu"}, "the install hook asks for api_key, and there is no terminal to ask on: pass --set api_key=VALUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			res, took := install(state, tc.sets...)
			if res.code != 1 || !strings.Contains(res.stderr, tc.want) || !strings.Contains(res.stderr, "installing elicit failed and was undone") {
				t.Fatalf("exit %d, want 1 and %q\nstderr: %s", res.code, tc.want, res.stderr)
			}
			// At once: well before the capsule's 60 s call timeout and elicit's 120 s.
			if took > 30*time.Second {
				t.Errorf("the install took %s to fail", took)
			}
			if got := storeEntries(t, state); !slices.Equal(got, []string{store.LockName}) {
				t.Fatalf("the store holds %v, want only its lock", got)
			}
			if strings.Contains(res.stdout+res.stderr, elicitSecret) {
				t.Errorf("the secret is in the output:\n%s", res.stderr)
			}
		})
	}
}

// TestElicitInstallTerminal: on a real terminal (a pseudo-terminal) install asks for each
// request: the text with its default, the secret without echo, the select with its options
// numbered. The capsule then reads the values; the secret is in no output and not echoed.
func TestElicitInstallTerminal(t *testing.T) {
	state := t.TempDir()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	notify := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			select {
			case notify <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	var stdout bytes.Buffer
	cmd := exec.Command(hostBin, "install", "--sandbox", "best-effort", "--log-level", "trace", capsules["elicit"])
	cmd.Env = append(os.Environ(), "ASTRID_STATE_DIR="+state)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &stdout, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	seen := 0
	expect := func(want string) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			mu.Lock()
			rest := screen.String()[seen:]
			if i := strings.Index(rest, want); i >= 0 {
				seen += i + len(want)
				mu.Unlock()
				return
			}
			mu.Unlock()
			select {
			case <-notify:
			case <-deadline:
				cmd.Process.Kill()
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("the terminal never showed %q; it shows:\n%s", want, screen.String())
			}
		}
	}
	typeLine := func(s string) {
		if _, err := ptmx.Write([]byte(s + "\r")); err != nil {
			t.Fatal(err)
		}
	}
	expect("Capsule elicit asks for region:")
	expect("Region [us]: ")
	typeLine("")
	expect("Capsule elicit asks for api_key:")
	expect("API key (input hidden): ")
	typeLine(elicitSecret)
	expect("Capsule elicit asks for tier:")
	expect("1) free")
	expect("2) pro")
	expect("Tier: ")
	typeLine("2")
	if err := <-exited; err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("install: %v\n%s", err, screen.String())
	}
	ptmx.Close()
	<-readDone
	if !strings.Contains(stdout.String(), "astrid_install ran") {
		t.Fatalf("stdout: %s", stdout.String())
	}
	checkInstalledElicit(t, state, "us", "pro", stdout.String(), screen.String())
}

// TestElicitBus: in a lifecycle hook's instance, astrid_elicit publishes upstream's
// ElicitRequest on astrid.v1.elicit and returns what is published on its response topic: a
// text's value, an array's values, a secret stored (not returned); a cancel traps with
// upstream's text; and the capsule unloading ends a waiting call at once.
func TestElicitBus(t *testing.T) {
	checkLeaks(t)
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	requests := h.Bus().Subscribe(elicit.TopicRequest)
	defer requests.Close()
	inst, _ := loadCapsule(t, h, "raw", host.LoadOptions{Lifecycle: host.LifecycleInstall})

	// ask calls astrid_elicit with req, answers the request it publishes with answer (unless
	// nil), and returns the call's result.
	ask := func(req string, answer func(id uuid.UUID)) ([]byte, error) {
		t.Helper()
		type result struct {
			out []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			out, err := callRaw(t, inst, "astrid_elicit", []byte(req))
			done <- result{out, err}
		}()
		env, err := requests.Recv(context.Background(), 1<<20)
		if err != nil || len(env.Messages) != 1 {
			t.Fatalf("the elicit request: %+v %v", env, err)
		}
		ev, id, err := elicit.ParseEvent(env.Messages[0].Payload)
		if err != nil || ev.CapsuleID != "raw" || env.Messages[0].SourceID != bus.NilSourceID {
			t.Fatalf("the elicit request %s from %s: %v", env.Messages[0].Payload, env.Messages[0].SourceID, err)
		}
		if answer != nil {
			answer(id)
		}
		r := <-done
		return r.out, r.err
	}
	publish := func(id uuid.UUID, payload string) {
		h.Bus().Publish(bus.Message{Topic: elicit.ResponseTopic(id), Payload: json.RawMessage(payload)})
	}
	for _, tc := range []struct {
		name, req, answer, want, err string
	}{
		{"text", `{"type":"text","key":"region"}`, `{"type":"elicit_response","request_id":"x","value":"eu"}`, `{"value":"eu"}`, ""},
		{"array", `{"type":"array","key":"relays"}`, `{"type":"elicit_response","request_id":"x","values":["a","b"]}`, `{"values":["a","b"]}`, ""},
		{"secret", `{"type":"secret","key":"api_key"}`, `{"type":"elicit_response","request_id":"x","value":"` + elicitSecret + `"}`, `{"ok":true}`, ""},
		{"empty secret", `{"type":"secret","key":"k2"}`, `{"type":"elicit_response","request_id":"x","value":""}`, "", "received empty secret value from elicit response"},
		{"cancel", `{"type":"text","key":"region"}`, `{"type":"elicit_response","request_id":"x"}`, "", "user cancelled elicit request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ask(tc.req, func(id uuid.UUID) { publish(id, tc.answer) })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %s, %v; want a trap with %q", out, err, tc.err)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Fatalf("got %s, %v; want %s", out, err, tc.want)
			}
		})
	}
	if v, ok, _ := secretstore.Get(state, "raw", "api_key"); !ok || v != elicitSecret {
		t.Fatalf("the secret store holds %q, %v", v, ok)
	}
	if out, err := callRaw(t, inst, "astrid_has_secret", []byte(`{"key":"api_key"}`)); err != nil || string(out) != `{"exists":true}` {
		t.Fatalf("has_secret: %s %v", out, err)
	}

	t.Run("unloaded while waiting", func(t *testing.T) {
		var took time.Duration
		_, err := ask(`{"type":"text","key":"region"}`, func(uuid.UUID) {
			start := time.Now()
			inst.Stop(context.Background())
			took = time.Since(start)
		})
		if err == nil {
			t.Fatal("the call returned no error after the unload")
		}
		if took > 10*time.Second {
			t.Fatalf("the unload took %s", took)
		}
	})
}

// TestElicitForgedRequest: the install's answerer (Host.AnswerElicit) answers only the requests
// the host publishes. A capsule allowed to publish on astrid.v1.elicit cannot make the operator
// answer a request of its own making (a "password" prompt in another capsule's name, say).
func TestElicitForgedRequest(t *testing.T) {
	checkLeaks(t)
	h := newHost(t, func(c *host.Config) { c.StateDir = t.TempDir() })
	var mu sync.Mutex
	var asked []string
	stop := h.AnswerElicit(func(e elicit.Event) (*string, []string) {
		mu.Lock()
		asked = append(asked, e.CapsuleID+"/"+e.Field.Key)
		mu.Unlock()
		v := "answered"
		return &v, nil
	})
	defer stop()

	dir := capsuleVariant(t, "ipc", "")
	toml := filepath.Join(dir, "Capsule.toml")
	data, err := os.ReadFile(toml)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`ipc_publish = ["test.v1.*"]`), []byte(`ipc_publish = ["test.v1.*", "astrid.v1.elicit"]`), 1)
	if err := os.WriteFile(toml, data, 0o644); err != nil {
		t.Fatal(err)
	}
	forger, _ := loadCapsule(t, h, dir)
	forged := `{"type":"elicit_request","request_id":"` + uuid.NewString() + `","capsule_id":"raw","field":{"key":"github_password","prompt":"GitHub password","field_type":"Secret"}}`
	in, _ := json.Marshal(map[string]any{"topic": elicit.TopicRequest, "payload": json.RawMessage(forged)})
	if out, err := forger.Call(context.Background(), "publish", in, 0); err != nil || string(out) != "ok" {
		t.Fatalf("publish the forged request: %s %v", out, err)
	}

	inst, _ := loadCapsule(t, h, "raw", host.LoadOptions{Lifecycle: host.LifecycleInstall})
	out, err := callRaw(t, inst, "astrid_elicit", []byte(`{"type":"text","key":"region"}`))
	if err != nil || string(out) != `{"value":"answered"}` {
		t.Fatalf("the genuine request: %s %v", out, err)
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(asked, []string{"raw/region"}) {
		t.Fatalf("the answerer was asked %v, want only raw/region", asked)
	}
}
