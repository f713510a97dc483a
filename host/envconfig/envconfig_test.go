package envconfig

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/astrid-go/astrid/host/internal/safefile"
	"github.com/astrid-go/astrid/host/manifest"
)

// testManifest is a capsule with one [env] key of each kind.
const testManifest = `
[package]
name = "weather"
version = "0.1.0"

[[component]]
id = "weather"
file = "weather.wasm"

[env]
api_key = { type = "secret", request = "Your API key", description = "From the provider's dashboard", placeholder = "sk-..." }
network = { type = "string", enum_values = ["testnet", "mainnet"], default = "testnet" }
region = { type = "string", enum_values = ["eu"] }
units = { type = "string", default = "metric" }
retries = { type = "number", default = 3 }
hosts = { type = "array" }
ASTRID_SOCKET_PATH = { type = "string", default = "/nope" }
`

func parseManifest(t *testing.T, toml string) *manifest.Manifest {
	t.Helper()
	m, _, err := manifest.Parse("/capsules/weather/Capsule.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func missingKeys(r Resolution) []string {
	var out []string
	for _, f := range r.Missing {
		out = append(out, f.Key)
	}
	return out
}

// TestResolve: the precedence override > saved > default, the enum rules, reserved keys.
func TestResolve(t *testing.T) {
	m := parseManifest(t, testManifest)
	for _, tc := range []struct {
		name            string
		saved, override map[string]string
		want            map[string]string // values the guest reads (subset)
		sources         map[string]Source
		missing         []string
		warn            string
	}{
		{
			name:    "nothing saved",
			want:    map[string]string{"api_key": "", "network": "", "region": "", "units": "metric", "retries": "3", "hosts": ""},
			sources: map[string]Source{"api_key": Missing, "network": Missing, "region": Missing, "units": FromDefault, "retries": FromDefault},
			// an enum of several values is missing even with a default; one of one value with
			// no default is missing too (its field proposes the value)
			missing: []string{"api_key", "hosts", "network", "region"},
		},
		{
			name:    "saved values",
			saved:   map[string]string{"api_key": "sk-1", "network": "mainnet", "region": "eu", "units": "imperial", "hosts": `["a"]`},
			want:    map[string]string{"api_key": "sk-1", "network": "mainnet", "region": "eu", "units": "imperial", "retries": "3", "hosts": `["a"]`},
			sources: map[string]Source{"api_key": FromSaved, "network": FromSaved, "units": FromSaved, "retries": FromDefault},
		},
		{
			name:     "override beats saved beats default",
			saved:    map[string]string{"units": "imperial", "api_key": "sk-1", "network": "mainnet", "region": "eu", "hosts": "[]"},
			override: map[string]string{"units": "kelvin", "extra": "x"},
			want:     map[string]string{"units": "kelvin", "extra": "x", "retries": "3"},
			sources:  map[string]Source{"units": FromOverride, "retries": FromDefault},
		},
		{
			name:     "override fills a missing key",
			override: map[string]string{"api_key": "sk-2"},
			sources:  map[string]Source{"api_key": FromOverride},
			missing:  []string{"hosts", "network", "region"},
		},
		{
			name:    "saved value an enum does not allow",
			saved:   map[string]string{"network": "devnet", "api_key": "k", "region": "eu", "hosts": "[]"},
			want:    map[string]string{"network": ""},
			missing: []string{"network"},
			warn:    `the saved value of network is ignored: network: "devnet" is not one of its values: "testnet", "mainnet"`,
		},
		{
			name:  "reserved key skipped",
			saved: map[string]string{"ASTRID_SOCKET_PATH": "/x", "api_key": "k", "network": "testnet", "region": "eu", "hosts": "[]"},
			warn:  "[env] declares the reserved key ASTRID_SOCKET_PATH; it is ignored",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Resolve(m, tc.saved, tc.override)
			for k, v := range tc.want {
				if got, ok := r.Values[k]; !ok || got != v {
					t.Errorf("Values[%s] = %q (set %v), want %q", k, got, ok, v)
				}
			}
			if _, ok := r.Values["ASTRID_SOCKET_PATH"]; ok {
				t.Error("the reserved key reached the guest's configuration")
			}
			for _, e := range r.Entries {
				if want, ok := tc.sources[e.Key]; ok && e.Source != want {
					t.Errorf("%s comes from %v, want %v", e.Key, e.Source, want)
				}
			}
			if got := strings.Join(missingKeys(r), ","); got != strings.Join(tc.missing, ",") {
				t.Errorf("missing %q, want %q", got, strings.Join(tc.missing, ","))
			}
			if tc.warn != "" && !strings.Contains(strings.Join(r.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q lack %q", r.Warnings, tc.warn)
			}
		})
	}
}

// TestOnboardingPayload: the exact JSON of upstream's IpcPayload::OnboardingRequired (serde:
// internally tagged "type", snake_case; OnboardingFieldType externally tagged; None omitted).
func TestOnboardingPayload(t *testing.T) {
	m := parseManifest(t, testManifest)
	r := Resolve(m, nil, nil)
	got, err := OnboardingPayload("weather", r.Missing)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"onboarding_required","capsule_id":"weather","fields":[` +
		`{"key":"api_key","prompt":"Your API key","description":"From the provider's dashboard","field_type":"Secret","placeholder":"sk-..."},` +
		`{"key":"hosts","prompt":"Please enter value for hosts","field_type":"Array"},` +
		`{"key":"network","prompt":"Please enter value for network","field_type":{"Enum":["testnet","mainnet"]},"default":"testnet"},` +
		`{"key":"region","prompt":"Please enter value for region","field_type":"Text","default":"eu"}]}`
	if string(got) != want {
		t.Errorf("payload\n got %s\nwant %s", got, want)
	}
	var back OnboardingRequired
	if err := json.Unmarshal(got, &back); err != nil || back.Fields[2].FieldType.Kind != "Enum" || len(back.Fields[2].FieldType.Options) != 2 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

// TestParse: a malformed file is an error naming the file and the problem.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
		values           map[string]string
	}{
		{name: "object of strings", data: `{"a": "1", "b": ""}`, values: map[string]string{"a": "1", "b": ""}},
		{name: "empty object", data: " {}\n", values: map[string]string{}},
		{name: "number value", data: `{"a": 1}`, want: `has a value for "a" that is a number, not a string`},
		{name: "array value", data: `{"a": ["x"]}`, want: `has a value for "a" that is an array, not a string`},
		{name: "null value", data: `{"a": null}`, want: `has a value for "a" that is null, not a string`},
		{name: "array", data: `["a"]`, want: "is not a JSON object"},
		{name: "empty", data: ``, want: "is not a JSON object"},
		{name: "truncated", data: `{"a": "1"`, want: "is not valid JSON"},
		{name: "trailing data", data: `{"a": "1"} {}`, want: "is not valid JSON"},
		{name: "invalid UTF-8", data: "{\"a\": \"\xff\"}", want: "is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("/s/config/env/x.env.json", []byte(tc.data))
			if tc.want == "" {
				if err != nil || len(got) != len(tc.values) {
					t.Fatalf("got %v, %v; want %v", got, err, tc.values)
				}
				for k, v := range tc.values {
					if got[k] != v {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "/s/config/env/x.env.json "+tc.want) || !strings.Contains(err.Error(), `{"KEY": "value"}`) {
				t.Fatalf("got %v; want an error naming the file and %q", err, tc.want)
			}
		})
	}
}

// TestRead: a missing file is no values; an oversize file or a FIFO is refused without being
// read (the size from stat, the type before open).
func TestRead(t *testing.T) {
	state := t.TempDir()
	if got, err := Read(state, "x"); err != nil || got != nil {
		t.Fatalf("no file: %v, %v", got, err)
	}
	if err := os.MkdirAll(Dir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Run("at the limit", func(t *testing.T) {
		pad := strings.Repeat("v", MaxFileBytes-len(`{"k":""}`))
		if err := os.WriteFile(Path(state, "big"), []byte(`{"k":"`+pad+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Read(state, "big")
		if err != nil || len(got["k"]) != len(pad) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		pad := strings.Repeat("v", MaxFileBytes+1-len(`{"k":""}`))
		if err := os.WriteFile(Path(state, "big"), []byte(`{"k":"`+pad+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Read(state, "big")
		if !errors.Is(err, safefile.ErrTooLarge) || !strings.Contains(err.Error(), Path(state, "big")) || !strings.Contains(err.Error(), "the limit is 1048576 bytes") {
			t.Fatalf("got %v; want the size refusal naming the file", err)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		if err := syscall.Mkfifo(Path(state, "fifo"), 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		_, err := Read(state, "fifo")
		if !errors.Is(err, safefile.ErrNotRegular) {
			t.Fatalf("got %v; want a refusal of the FIFO", err)
		}
	})
	t.Run("bad name", func(t *testing.T) {
		if _, err := Read(state, "../../etc/passwd"); err == nil {
			t.Fatal("a name with slashes was accepted")
		}
	})
}

// TestUpdate: checks keys and enum values before writing anything; the file is 0600 in 0700
// directories and replaced atomically; unset removes saved keys, including stale ones.
func TestUpdate(t *testing.T) {
	m := parseManifest(t, testManifest)
	state := t.TempDir()
	for _, tc := range []struct {
		name  string
		set   map[string]string
		unset []string
		want  string // error substring, "" for success
	}{
		{"unknown key", map[string]string{"colour": "red"}, nil, `"colour" is not an [env] key of capsule weather; its keys are: api_key, hosts, network, region, retries, units`},
		{"reserved key", map[string]string{"ASTRID_SOCKET_PATH": "/x"}, nil, "ASTRID_SOCKET_PATH is reserved"},
		{"enum value", map[string]string{"network": "devnet"}, nil, `network: "devnet" is not one of its values: "testnet", "mainnet"`},
		{"one-value enum", map[string]string{"region": "us"}, nil, `region: "us" is not one of its values: "eu"`},
		{"array not JSON", map[string]string{"hosts": "a,b"}, nil, `hosts: "a,b" is not a JSON array`},
		{"invalid UTF-8", map[string]string{"units": "\xff"}, nil, "not valid UTF-8"},
		{"secret value never in errors", map[string]string{"api_key": "sk-\xff"}, nil, "api_key: the value is not valid UTF-8"},
		{"unset unknown", nil, []string{"colour"}, `"colour" is not an [env] key`},
		{"set", map[string]string{"api_key": "sk-1", "network": "mainnet", "hosts": `["a","b"]`}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Update(state, m, tc.set, tc.unset)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk-") {
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
	if plain, _ := Read(state, "weather"); plain["api_key"] != "" {
		t.Errorf("the secret is in the configuration file")
	}
	got, err := ReadAll(state, m)
	if err != nil || got["api_key"] != "sk-1" || got["network"] != "mainnet" || len(got) != 3 {
		t.Fatalf("saved %v, %v", got, err)
	}
	for path, want := range map[string]os.FileMode{Path(state, "weather"): 0o600, Dir(state): 0o700, filepath.Dir(Dir(state)): 0o700} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	// A stale key (not in [env]) can be unset; unsetting everything removes the file.
	data, _ := os.ReadFile(Path(state, "weather"))
	var raw map[string]string
	_ = json.Unmarshal(data, &raw)
	raw["old"] = "x"
	data, _ = json.Marshal(raw)
	if err := os.WriteFile(Path(state, "weather"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Update(state, m, nil, []string{"old", "api_key", "network", "hosts"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(Path(state, "weather")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the emptied file is still there: %v", err)
	}
	entries, _ := os.ReadDir(Dir(state))
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	// A malformed file is not overwritten.
	if err := os.WriteFile(Path(state, "weather"), []byte("{oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Update(state, m, map[string]string{"units": "si"}, nil); err == nil || !strings.Contains(err.Error(), "is not valid JSON") {
		t.Fatalf("got %v; want the malformed file's error", err)
	}
	if data, _ := os.ReadFile(Path(state, "weather")); string(data) != "{oops" {
		t.Errorf("the malformed file was replaced: %q", data)
	}
}
