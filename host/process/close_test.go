package process

import (
	"context"
	"errors"
	"testing"
)

// TestClose: Close kills and reaps every tree the Manager started (background processes, their
// children, a synchronous spawn in progress), removes the private tmp directories, and makes
// later requests fail.
func TestClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var markers []string
	for range 3 {
		m := marker()
		markers = append(markers, m)
		e.background(t, "sleep", m)
	}
	child, grandchild := marker(), marker()
	markers = append(markers, child, grandchild)
	e.background(t, "sh", "-c", "sleep "+grandchild+" & exec sleep "+child)
	for _, m := range markers {
		waitRunning(t, m)
	}

	syncMarker := marker()
	spawned := make(chan SpawnResult)
	go func() {
		res, err := e.m.Spawn(context.Background(), bob, SpawnRequest{Cmd: "sleep", Args: []string{syncMarker}})
		if err != nil {
			t.Error(err)
		}
		spawned <- res
	}()
	waitRunning(t, syncMarker)

	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	noSurvivors(t, append(markers, syncMarker)...)
	if res := <-spawned; res != (SpawnResult{Stderr: "process cancelled", ExitCode: -1}) {
		t.Errorf("the spawn in progress returned %+v", res)
	}
	_, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "true"})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("spawn after Close: %v", err)
	}
	wantErr(t, err, "process manager is closed: capsule 'test-capsule' is unloading or the host is exiting")
	if _, err := e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "true"}); !errors.Is(err, ErrClosed) {
		t.Errorf("spawn_background after Close: %v", err)
	}
	if _, err := e.m.ReadLogs(alice, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("read_logs after Close: %v", err)
	}
	if err := e.m.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// TestCloseSetsidGrandchild: a grandchild that left the process group with setsid is reaped
// too — by the sandbox's pid namespace, so only where there is one.
func TestCloseSetsidGrandchild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if !e.hasPIDNamespace(t) {
		t.Skip("no pid namespace (sandbox policy off): a setsid grandchild leaves the process group, and only the sandbox's pid namespace catches it")
	}
	child, escaped := marker(), marker()
	e.background(t, "sh", "-c", "setsid sleep "+escaped+" & exec sleep "+child)
	waitRunning(t, child)
	waitRunning(t, escaped)
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	noSurvivors(t, child, escaped)
}
