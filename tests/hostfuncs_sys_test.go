package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// TestSysLog: astrid_log from a guest with no SDK writes a line of the capsule at the level its
// word names (upstream's words, any case; anything else is info), escaped, into the host's log.
func TestSysLog(t *testing.T) {
	checkLeaks(t)
	h, logs := hostWithLog(t, hclog.Trace)
	inst, _ := loadCapsule(t, h, "raw")
	for i, tc := range []struct{ word, level string }{
		{"trace", "[TRACE]"},
		{"TRACE", "[TRACE]"},
		{"debug", "[DEBUG]"},
		{"Debug", "[DEBUG]"},
		{"info", "[INFO] "},
		{"warn", "[WARN] "},
		{"WARNING", "[WARN] "},
		{"error", "[ERROR]"},
		{"Err", "[ERROR]"},
		{"notice", "[INFO] "},
		{"", "[INFO] "},
		{"warn\n", "[INFO] "},
	} {
		t.Run(fmt.Sprintf("%q", tc.word), func(t *testing.T) {
			msg := fmt.Sprintf("line %d of the level test", i)
			if _, err := callRaw(t, inst, "astrid_log", []byte(tc.word), []byte(msg)); err != nil {
				t.Fatal(err)
			}
			// The shim sends the call's log lines before it answers the call.
			line := logLine(t, logs.String(), msg+":")
			if !strings.Contains(line, tc.level) || !strings.Contains(line, "test-host.raw:") || !strings.Contains(line, "source=log") {
				t.Errorf("log line %q: want level %s from the raw capsule with source=log", line, tc.level)
			}
		})
	}
	t.Run("escaped", func(t *testing.T) {
		before := len(logs.String())
		if _, err := callRaw(t, inst, "astrid_log", []byte("error"), []byte(forged)); err != nil {
			t.Fatal(err)
		}
		out := logs.String()[before:]
		checkEscaped(t, "the host log", out)
		if want := `test-host.raw: hello\n[ERROR] astrid-host: forged\x1b[31m red \x9b2J\u202e: source=log`; !strings.Contains(out, want) {
			t.Errorf("the host log lacks %q:\n%s", want, out)
		}
	})
}

// logLine returns the line of out that contains msg, failing the test if there is none.
func logLine(t *testing.T, out, msg string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, msg) {
			return line
		}
	}
	t.Fatalf("no log line holds %q:\n%s", msg, out)
	return ""
}

// TestSysLogLevel: astrid_log honours the capsule's log level (the host's): below it the line is
// dropped, at or above it the line is written.
func TestSysLogLevel(t *testing.T) {
	checkLeaks(t)
	h, logs := hostWithLog(t, hclog.Warn)
	inst, _ := loadCapsule(t, h, "raw")
	for _, tc := range []struct {
		word    string
		written bool
	}{{"trace", false}, {"debug", false}, {"info", false}, {"other", false}, {"warn", true}, {"error", true}} {
		msg := "level check " + tc.word
		if _, err := callRaw(t, inst, "astrid_log", []byte(tc.word), []byte(msg)); err != nil {
			t.Fatalf("%s: %v", tc.word, err)
		}
		if got := strings.Contains(logs.String(), msg); got != tc.written {
			t.Errorf("%s at a warn log level: written %v, want %v:\n%s", tc.word, got, tc.written, logs.String())
		}
	}
}

// TestSysLimits: the argument limits of astrid_log and astrid_get_config, exactly: a block at
// the limit is accepted, one byte more traps the guest's call with upstream's text (checked
// before the shim copies the block), and the capsule keeps working.
func TestSysLimits(t *testing.T) {
	checkLeaks(t)
	h, logs := hostWithLog(t, hclog.Info)
	inst, _ := loadCapsule(t, h, "raw")
	tooLarge := func(n, limit int) string {
		return fmt.Sprintf("memory allocation of %d bytes exceeds maximum allowed limit of %d bytes", n, limit)
	}
	for _, tc := range []struct {
		name string
		fn   string
		args [][]byte
		// trap names the refused argument; "" for success. n is its length, limit its limit.
		trap     string
		n, limit int
	}{
		{"log level at 64 bytes", "astrid_log", [][]byte{[]byte(strings.Repeat("l", 64)), []byte("long level")}, "", 0, 0},
		{"log level over 64 bytes", "astrid_log", [][]byte{[]byte(strings.Repeat("l", 65)), []byte("x")}, "astrid_log: level handle 0x", 65, 64},
		{"log message at 64 KiB", "astrid_log", [][]byte{[]byte("info"), []byte("big" + strings.Repeat("m", 64<<10-3))}, "", 0, 0},
		{"log message over 64 KiB", "astrid_log", [][]byte{[]byte("info"), []byte(strings.Repeat("m", 64<<10+1))}, "astrid_log: message handle 0x", 64<<10 + 1, 64 << 10},
		{"config key at 4 KiB", "astrid_get_config", [][]byte{[]byte(strings.Repeat("k", 4<<10))}, "", 0, 0},
		{"config key over 4 KiB", "astrid_get_config", [][]byte{[]byte(strings.Repeat("k", 4<<10+1))}, "astrid_get_config: key handle 0x", 4<<10 + 1, 4 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := callRaw(t, inst, tc.fn, tc.args...)
			if tc.trap == "" {
				if err != nil {
					t.Fatalf("%v", err)
				}
				return
			}
			var ge *host.GuestError
			if err == nil || !strings.Contains(err.Error(), tc.trap) || !strings.Contains(err.Error(), tooLarge(tc.n, tc.limit)) {
				t.Fatalf("got %q, %v; want a trap with %q and %q", out, err, tc.trap, tooLarge(tc.n, tc.limit))
			}
			if !errors.As(err, &ge) || ge.KindName() != "trap" {
				t.Errorf("%v: want a guest trap", err)
			}
		})
	}
	if !strings.Contains(logs.String(), "big"+strings.Repeat("m", 100)) {
		t.Error("the 64 KiB message is not in the host log")
	}
	// The capsule still answers after its traps.
	if out, err := callRaw(t, inst, "astrid_get_config", []byte("greeting")); err != nil || string(out) != "hello" {
		t.Fatalf("after the traps: %q, %v", out, err)
	}
}

// TestSysGetConfig: astrid_get_config returns the [env] value (a string unquoted, any other
// value as JSON), the operator's --config override, and "" for a key that is not set.
func TestSysGetConfig(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	dir := capsuleVariant(t, "raw", `
[env.count]
type = "number"
default = 42

[env.ratio]
type = "number"
default = 1.5

[env.flag]
type = "boolean"
default = true

[env.list]
type = "array"
default = [1, "two", false]

[env.table]
type = "object"
default = { b = 2, a = "x" }

[env.quoted]
type = "string"
default = "say \"hi\"\n"
`)
	inst, _ := loadCapsule(t, h, dir)
	over, _ := loadCapsule(t, h, dir, host.LoadOptions{Config: map[string]string{"greeting": "bonjour", "count": "7", "extra": ""}})
	for _, tc := range []struct {
		name string
		inst *host.Instance
		key  string
		want string
	}{
		{"string default", inst, "greeting", "hello"},
		{"string with quotes and newline", inst, "quoted", "say \"hi\"\n"},
		{"integer", inst, "count", "42"},
		{"float", inst, "ratio", "1.5"},
		{"boolean", inst, "flag", "true"},
		{"array", inst, "list", `[1,"two",false]`},
		{"table", inst, "table", `{"a":"x","b":2}`},
		{"missing", inst, "nope", ""},
		{"empty key", inst, "", ""},
		{"override", over, "greeting", "bonjour"},
		{"override of a number", over, "count", "7"},
		{"override not in [env]", over, "extra", ""},
		{"default kept beside overrides", over, "flag", "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := callRaw(t, tc.inst, "astrid_get_config", []byte(tc.key))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("astrid_get_config(%q) = %q, want %q", tc.key, out, tc.want)
			}
		})
	}
	t.Run("call --config", func(t *testing.T) {
		in, _ := json.Marshal(rawRequest{Fn: "astrid_get_config", Args: [][]byte{[]byte("greeting")}})
		res := runCLI(t, t.TempDir(), "call", "--sandbox", "best-effort", "--config", "greeting=salut", "--input", string(in), capsules["raw"], "call")
		if res.code != 0 || res.stdout != "salut" {
			t.Fatalf("exit %d, stdout %q; stderr:\n%s", res.code, res.stdout, res.stderr)
		}
	})
}

// TestSysCallerAndClock: astrid_get_caller outside an invocation for a bus message is {};
// astrid_clock_ms is the wall clock in milliseconds, as a decimal string.
func TestSysCallerAndClock(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "raw")
	t.Run("caller", func(t *testing.T) {
		out, err := callRaw(t, inst, "astrid_get_caller")
		if err != nil || string(out) != "{}" {
			t.Fatalf("astrid_get_caller() = %q, %v; want {}", out, err)
		}
	})
	t.Run("clock", func(t *testing.T) {
		before := time.Now().UnixMilli()
		out, err := callRaw(t, inst, "astrid_clock_ms")
		after := time.Now().UnixMilli()
		if err != nil {
			t.Fatal(err)
		}
		ms, err := strconv.ParseInt(string(out), 10, 64)
		if err != nil || strconv.FormatInt(ms, 10) != string(out) {
			t.Fatalf("astrid_clock_ms() = %q: not a plain decimal (%v)", out, err)
		}
		if ms < before || ms > after {
			t.Errorf("astrid_clock_ms() = %d, outside the call's [%d, %d]", ms, before, after)
		}
	})
}

// TestSysCheckCapsuleCapability: astrid_check_capsule_capability answers {"allowed": bool} for
// any [capabilities] field of the capsule instance with the given source id (a boolean's value,
// a list not empty), and false, never an error, for an unknown field, an unknown or stopped
// instance, or a malformed request; a request over 1 KiB traps.
func TestSysCheckCapsuleCapability(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	checker, _ := loadCapsule(t, h, "raw")
	dir := capsuleVariant(t, "raw", "")
	toml := filepath.Join(dir, "Capsule.toml")
	data, err := os.ReadFile(toml)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "[capabilities]\n", "[capabilities]\nallow_prompt_injection = true\nuplink = false\nidentity = []\n", 1))
	if err := os.WriteFile(toml, data, 0o644); err != nil {
		t.Fatal(err)
	}
	target, _ := loadCapsule(t, h, dir)
	stopped, _ := loadCapsule(t, h, dir)
	stoppedID := stopped.Status().Instance
	stopped.Stop(context.Background())
	targetID, selfID := target.Status().Instance, checker.Status().Instance
	req := func(id, capability string) string {
		b, err := json.Marshal(map[string]string{"source_uuid": id, "capability": capability})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name    string
		request string
		allowed bool
	}{
		{"bool true", req(targetID, "allow_prompt_injection"), true},
		{"bool false", req(targetID, "uplink"), false},
		{"bool absent", req(targetID, "process_network"), false},
		{"list", req(targetID, "net"), true},
		{"another list", req(targetID, "fs_write"), true},
		{"empty list", req(targetID, "identity"), false},
		{"absent list", req(targetID, "kv"), false},
		{"unknown field", req(targetID, "root"), false},
		{"field in another case", req(targetID, "ALLOW_PROMPT_INJECTION"), false},
		{"own instance, absent", req(selfID, "allow_prompt_injection"), false},
		{"own instance, list", req(selfID, "ipc_publish"), true},
		{"upper-case uuid", req(strings.ToUpper(targetID), "allow_prompt_injection"), true},
		{"unknown uuid", req("0f0e0d0c-0b0a-4908-8706-050403020100", "allow_prompt_injection"), false},
		{"stopped instance", req(stoppedID, "allow_prompt_injection"), false},
		{"not a uuid", req("raw", "allow_prompt_injection"), false},
		{"empty uuid", req("", "net"), false},
		{"not JSON", "allow_prompt_injection", false},
		{"empty request", "", false},
		{"capability not a string", fmt.Sprintf(`{"source_uuid":%q,"capability":true}`, targetID), false},
		{"JSON array", "[]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := callRaw(t, checker, "astrid_check_capsule_capability", []byte(tc.request))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"allowed":%v}`, tc.allowed); string(out) != want {
				t.Errorf("%s: got %s, want %s", tc.request, out, want)
			}
		})
	}
	t.Run("request over 1 KiB", func(t *testing.T) {
		long := req(targetID, "allow_prompt_injection"+strings.Repeat(" ", 1024))
		out, err := callRaw(t, checker, "astrid_check_capsule_capability", []byte(long))
		want := fmt.Sprintf("memory allocation of %d bytes exceeds maximum allowed limit of 1024 bytes", len(long))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %q, %v; want a trap with %q", out, err, want)
		}
	})
}
