package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/sandbox"
)

// confinement is what a shim's confinement looks like from outside: its seccomp mode,
// no_new_privs, capabilities, which namespaces it does not share with the test, and its
// cgroup's memory limit (where the machine has a memory cgroup).
func confinement(t *testing.T, pid int) map[string]string {
	t.Helper()
	out := make(map[string]string)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "Seccomp", "NoNewPrivs", "CapEff", "CapBnd", "CapAmb", "CapInh":
			out[k] = strings.TrimSpace(v)
		}
	}
	for _, ns := range []string{"user", "pid", "net", "ipc", "uts", "mnt"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		out["own "+ns+" namespace"] = strconv.FormatBool(its != mine)
	}
	cgroups, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	for _, line := range strings.Split(string(cgroups), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[1] == "memory" {
			limit, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", f[2], "memory.limit_in_bytes"))
			out["memory limit"] = strings.TrimSpace(string(limit))
		}
	}
	return out
}

var sparePid = regexp.MustCompile(`spare-shim: plugin started: .*pid=(\d+)`)

// TestSpareShims: a capsule takes a spare shim of its kind (engine and memory limit), and runs
// under exactly the confinement a shim started for it would have; a capsule of another kind
// starts its own; Shutdown ends the spares left.
func TestSpareShims(t *testing.T) {
	ctx := context.Background()
	coldHost := newHost(t, func(c *host.Config) { c.SpareShims = -1 })
	cold, _ := loadCapsule(t, coldHost, "hello")
	want := confinement(t, cold.Pid())
	if want["Seccomp"] != "2" || want["NoNewPrivs"] != "1" {
		t.Fatalf("the shim started for its capsule is not confined as the test expects: %v", want)
	}
	for _, ns := range []string{"user", "pid", "net", "ipc", "uts", "mnt"} {
		if testSandbox.Policy() == sandbox.Required && want["own "+ns+" namespace"] != "true" {
			t.Fatalf("the shim started for its capsule shares the %s namespace: %v", ns, want)
		}
	}
	wasm, err := os.ReadFile(filepath.Join(capsules["hello"], "hello.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		limits string // the second capsule's [limits]
		spare  bool   // it takes the spare the first one's load left
	}{
		{"same kind: takes the spare", "memory = \"64MiB\"", true},
		{"another memory limit: its own shim", "memory = \"32MiB\"", false},
		{"fuel: its own shim", "memory = \"64MiB\"\nfuel = 1000000000", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			h := newHost(t, func(c *host.Config) {
				c.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
			})
			first, _ := loadCapsule(t, h, "hello") // leaves a spare of its kind
			h.WaitSpares()
			m := mustManifest(t, binCapsule(t, "second", wasm, "[limits]\n"+tc.limits+"\n"))
			inst, _, err := h.Load(ctx, m, host.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			given := fmt.Sprintf("second: shim given to the capsule: pid=%d spare=%v", inst.Pid(), tc.spare)
			if !strings.Contains(logs.String(), given) {
				t.Fatalf("no %q in the log:\n%s", given, logs.String())
			}
			got := confinement(t, inst.Pid())
			expect := want
			if !tc.spare {
				expect = confinement(t, first.Pid())
				if _, ok := expect["memory limit"]; ok && strings.Contains(tc.limits, "32MiB") {
					expect["memory limit"] = strconv.FormatInt(32<<20+host.ShimMemoryOverhead, 10)
				}
			}
			for k, v := range expect {
				if got[k] != v {
					t.Errorf("%s: %q, want %q (the shim started for its capsule: %v; this one: %v)", k, got[k], v, expect, got)
				}
			}
			// What go-plugin logs about the shim from now on is the capsule's, spare or not.
			inst.Stop(ctx)
			exited := regexp.MustCompile(fmt.Sprintf(`second: plugin process exited: .*id=%d\b`, inst.Pid()))
			waitFor(t, 10*time.Second, "the shim's exit logged under the capsule's name", func() bool { return exited.MatchString(logs.String()) })
			// The spares left (this kind's refill, and the first capsule's) end with the host.
			var spares []int
			for _, m := range sparePid.FindAllStringSubmatch(logs.String(), -1) {
				pid, _ := strconv.Atoi(m[1])
				spares = append(spares, pid)
			}
			if len(spares) == 0 {
				t.Fatalf("no spare started:\n%s", logs.String())
			}
			h.Shutdown(ctx)
			for _, pid := range spares {
				waitFor(t, 10*time.Second, fmt.Sprintf("spare shim %d to be gone", pid), func() bool { return !processAlive(pid) })
			}
		})
	}
}
