package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// TestTamperedArtefact: something that can write the state directory (a capsule's process, where
// no sandbox keeps it out) replaces cached native code between two loads of a capsule: the
// capsule's artefact by another capsule's (valid, from the same shim), the shim's kernel artefact
// by a capsule's, or the remembered digest of the capsule's module by another module's. The next
// load detects it, logs it, deletes the artefact and compiles again, and the capsule runs its own
// code: what it answered before the tampering.
func TestTamperedArtefact(t *testing.T) {
	logs := &logCapture{}
	tw := &testWriter{t: t}
	t.Cleanup(tw.close)
	h := newHost(t, func(c *host.Config) {
		c.StateDir = t.TempDir() // a cache of its own
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "test-host", Output: io.MultiWriter(logs, tw), Level: hclog.Debug})
		// Each load must start its shim after the tampering: a spare started before it holds
		// the kernel's memfd checked then (the good bytes), and would not look at the file.
		c.SpareShims = -1
	})
	dir := h.Cache().Dir()
	artefacts := func() []string {
		found, _ := filepath.Glob(filepath.Join(dir, "[0-9a-f]*-*.cwasm"))
		return found
	}
	hello, _ := loadCapsule(t, h, "hello")
	genuine := call(t, hello, "greet", "world")
	hello.Stop(context.Background())
	if len(artefacts()) != 1 {
		t.Fatalf("want hello's artefact alone in the cache, found %v", artefacts())
	}
	helloArt := artefacts()[0]
	counter, _ := loadCapsule(t, h, "counter")
	counter.Stop(context.Background())
	var counterArt string
	for _, a := range artefacts() {
		if a != helloArt {
			counterArt = a
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(dir, "kernel-*.cwasm"))
	if counterArt == "" || len(kernels) != 1 {
		t.Fatalf("want counter's artefact and one kernel artefact, found %v and %v", artefacts(), kernels)
	}
	kernel := kernels[0]

	// replace writes data at path as an attacker with write access to the directory would.
	replace := func(t *testing.T, path string, data []byte) {
		t.Helper()
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	read := func(t *testing.T, path string) []byte {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name string
		// tamper changes the cache and returns the file whose deletion is logged ("" for none).
		tamper   func(t *testing.T) string
		compiled bool
	}{
		{"the capsule's artefact replaced by another capsule's", func(t *testing.T) string {
			replace(t, helloArt, read(t, counterArt))
			return helloArt
		}, true},
		{"the capsule's artefact truncated", func(t *testing.T) string {
			data := read(t, helloArt)
			replace(t, helloArt, data[:len(data)/2])
			return helloArt
		}, true},
		{"the kernel's artefact replaced by a capsule's", func(t *testing.T) string {
			replace(t, kernel, read(t, counterArt))
			return kernel
		}, false},
		{"the remembered module digest pointed at another module", func(t *testing.T) string {
			// The index maps a module's path and file identity to its SHA-256; the attacker
			// keeps the identity and names counter's module, whose artefact is genuine.
			counterSum := strings.SplitN(filepath.Base(counterArt), "-", 2)[0]
			entries, _ := filepath.Glob(filepath.Join(dir, "digests", "*"))
			n := 0
			for _, e := range entries {
				lines := strings.Split(string(read(t, e)), "\n")
				if len(lines) > 1 && strings.HasPrefix(filepath.Base(helloArt), lines[1]) {
					replace(t, e, []byte(lines[0]+"\n"+counterSum+"\n"))
					n++
				}
			}
			if n != 1 {
				t.Fatalf("found %d digest entries for hello's module in %v", n, entries)
			}
			return ""
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			deleted := tc.tamper(t)
			tampered := []byte(nil)
			if deleted != "" {
				tampered = read(t, deleted)
			}
			before := logs.len()
			inst, res := loadCapsule(t, h, "hello")
			defer inst.Stop(context.Background())
			if got := call(t, inst, "greet", "world"); got != genuine {
				t.Fatalf("greet answered %q; the genuine capsule answers %q", got, genuine)
			}
			if res.Compiled != tc.compiled {
				t.Errorf("compiled = %v, want %v", res.Compiled, tc.compiled)
			}
			if slices.Contains(inst.Exports(), "increment") {
				t.Errorf("hello runs counter's code: exports %v", inst.Exports())
			}
			if deleted == "" {
				return
			}
			line := logs.since(before).line("a cached artefact failed its check")
			if !strings.Contains(line, filepath.Base(deleted)) {
				t.Errorf("no log line names the tampered %s: %q", deleted, line)
			}
			// What the cache holds now is the genuine code again, not what the attacker wrote.
			if data, err := os.ReadFile(deleted); err == nil && bytes.Equal(data, tampered) {
				t.Errorf("%s still holds the tampered bytes", deleted)
			}
		})
	}
}

// TestColdCacheCompilesOnce: capsules that share a module, booted together on a cold cache,
// compile it once: the load that finds no artefact compiles it, the others wait for it and load
// the cached artefact (each would otherwise compile it in its own shim, at the compile's cost
// in CPU and with a copy of the compiled code each). Every capsule still runs.
func TestColdCacheCompilesOnce(t *testing.T) {
	wasm, err := os.ReadFile(filepath.Join(capsules["hello"], "hello.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, func(c *host.Config) { c.StateDir = t.TempDir() }) // a cold cache of its own
	var caps []host.Capsule
	for k := range 6 {
		caps = append(caps, host.Capsule{Manifest: mustManifest(t, binCapsule(t, fmt.Sprintf("same%d", k), wasm, ""))})
	}
	rep := h.Boot(context.Background(), caps)
	if rep.Loaded() != len(caps) {
		t.Fatalf("booted %d of %d: %+v", rep.Loaded(), len(caps), rep.Outcomes)
	}
	compiled := 0
	for _, o := range rep.Outcomes {
		if o.Result.Compiled {
			compiled++
		}
		if out := call(t, o.Instance, "greet", "world"); len(out) == 0 {
			t.Errorf("%s: greet returned nothing", o.Instance.ID())
		}
	}
	if compiled != 1 {
		t.Errorf("the shared module was compiled %d times, want once", compiled)
	}
}
