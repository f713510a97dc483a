package process

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRingKeepsNewest: a background process's ring keeps its newest RingBytes.
func TestRingKeepsNewest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.background(t, "sh", "-c", "yes 0123456789abcdef | head -c 3000000; printf TAIL-MARKER; echo on-stderr >&2")
	w, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: id})
	if err != nil || w.Running || !sameInt(w.ExitCode, intp(0)) {
		t.Fatalf("wait: %+v, %v", w, err)
	}
	logs, err := e.m.ReadLogs(alice, id)
	if err != nil {
		t.Fatal(err)
	}
	written := strings.Repeat("0123456789abcdef\n", 3000000/17+1)[:3000000] + "TAIL-MARKER"
	if want := written[len(written)-RingBytes:]; logs.Stdout != want {
		t.Errorf("stdout: %d bytes ending %q, want the last %d bytes written, ending %q",
			len(logs.Stdout), logs.Stdout[max(0, len(logs.Stdout)-40):], RingBytes, want[len(want)-40:])
	}
	if logs.Stderr != "on-stderr\n" || logs.Running || !sameInt(logs.ExitCode, intp(0)) || logs.Signal != nil {
		t.Errorf("got stderr %q running %v exit %v signal %v", logs.Stderr, logs.Running, deref(logs.ExitCode), deref(logs.Signal))
	}
	again, err := e.m.ReadLogs(alice, id)
	if err != nil || again.Stdout != "" || again.Stderr != "" || again.Running {
		t.Errorf("second read_logs: %+v, %v; want drained rings", again, err)
	}
}

// TestStdin: write_stdin reaches the process, read_logs streams its output, close ends it.
func TestStdin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, err := e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "cat", Stdin: strp("first\n")})
	if err != nil {
		t.Fatal(err)
	}
	id := res.ID
	var out strings.Builder
	readUntil := func(want string) {
		t.Helper()
		eventually(t, "the output is "+want, func() bool {
			logs, err := e.m.ReadLogs(alice, id)
			if err != nil {
				t.Fatal(err)
			}
			if !logs.Running {
				t.Fatalf("cat ended early: %+v", logs)
			}
			out.WriteString(logs.Stdout)
			return out.String() == want
		})
	}
	readUntil("first\n")
	w, err := e.m.WriteStdin(context.Background(), alice, WriteStdinRequest{ID: id, Data: "hello\n"})
	if err != nil || w.Written != 6 {
		t.Fatalf("write_stdin: %+v, %v", w, err)
	}
	readUntil("first\nhello\n")
	if w, err := e.m.WriteStdin(context.Background(), alice, WriteStdinRequest{ID: id, Data: "bye\n", Close: true}); err != nil || w.Written != 4 {
		t.Fatalf("write_stdin with close: %+v, %v", w, err)
	}
	wait, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: id})
	if err != nil || wait.Running || !sameInt(wait.ExitCode, intp(0)) {
		t.Fatalf("cat did not end with its stdin: %+v, %v", wait, err)
	}
	logs, err := e.m.ReadLogs(alice, id)
	if err != nil || logs.Stdout != "bye\n" || logs.Running {
		t.Fatalf("last read_logs: %+v, %v", logs, err)
	}
	_, err = e.m.WriteStdin(context.Background(), alice, WriteStdinRequest{ID: id, Data: "late"})
	wantErr(t, err, "cannot write to background process 1: its stdin is closed")
	if w, err := e.m.WriteStdin(context.Background(), alice, WriteStdinRequest{ID: id, Close: true}); err != nil || w.Written != 0 {
		t.Fatalf("closing a closed stdin: %+v, %v", w, err)
	}
	_, err = e.m.WriteStdin(context.Background(), alice, WriteStdinRequest{ID: id, Data: strings.Repeat("x", MaxStdinWrite+1)})
	wantErr(t, err, "write_stdin data too large: 1048577 bytes, at most 1048576 a call")
}

// TestStdinWriteCancelled: a write to a process that does not read blocks until the context is
// cancelled, and the process's exit ends a blocked write too.
func TestStdinWriteCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := marker()
	id := e.background(t, "sleep", m) // never reads its stdin
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	big := strings.Repeat("x", MaxStdinWrite) // more than a pipe holds
	_, err := e.m.WriteStdin(ctx, alice, WriteStdinRequest{ID: id, Data: big})
	wantErrContaining(t, err, "writing to the stdin of background process 1 failed after", "context deadline exceeded")

	done := make(chan error, 1)
	go func() {
		_, err := e.m.WriteStdin(context.Background(), alice, WriteStdinRequest{ID: id, Data: big})
		done <- err
	}()
	if _, err := e.m.Kill(alice, id); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("a write blocked on a killed process succeeded")
	}
}

// TestWait: a timed-out wait leaves the process running; a later wait sees how it ended.
func TestWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := marker()
	id := e.background(t, "sleep", m)
	pid := waitRunning(t, m)
	for _, ms := range []uint64{0, 50} {
		w, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: id, TimeoutMS: u64p(ms)})
		if err != nil || w != (WaitResult{Running: true, TimedOut: true}) {
			t.Fatalf("wait %d ms: %+v, %v", ms, w, err)
		}
	}
	if procState(pid) == "" {
		t.Fatal("the process is gone after a timed-out wait")
	}
	if _, err := e.m.Signal(alice, SignalRequest{ID: id, Signal: "term"}); err != nil {
		t.Fatal(err)
	}
	w, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: id})
	if err != nil || w.Running || w.TimedOut || w.ExitCode != nil || !sameInt(w.Signal, intp(15)) {
		t.Fatalf("wait after term: %+v, %v", w, err)
	}
	w, err = e.m.Wait(context.Background(), alice, WaitRequest{ID: id, TimeoutMS: u64p(0)})
	if err != nil || w.Running || !sameInt(w.Signal, intp(15)) {
		t.Fatalf("wait again: %+v, %v", w, err)
	}
	_, err = e.m.Wait(context.Background(), alice, WaitRequest{ID: id, TimeoutMS: u64p(MaxTimeoutMS + 1)})
	wantErrContaining(t, err, "invalid timeout_ms")
}

// TestWaitCancelled: the context (the capsule unloading) ends a wait; the process stays.
func TestWaitCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := marker()
	id := e.background(t, "sleep", m)
	pid := waitRunning(t, m)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.m.Wait(cancelled, alice, WaitRequest{ID: id})
	wantErr(t, err, "wait for background process 1 cancelled: context canceled")

	ctx, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err = e.m.Wait(ctx, alice, WaitRequest{ID: id})
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("a wait with a context that expires: %v", err)
	}
	if procState(pid) == "" {
		t.Fatal("the process is gone after a cancelled wait")
	}
}

// TestSignals: stop and cont are observed in /proc; term ends a sleep with signal 15.
func TestSignals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := marker()
	id := e.background(t, "sleep", m)
	pid := waitRunning(t, m)
	signal := func(name string) {
		t.Helper()
		res, err := e.m.Signal(alice, SignalRequest{ID: id, Signal: name})
		if err != nil || !res.OK {
			t.Fatalf("signal %s: %+v, %v", name, res, err)
		}
	}
	signal("stop")
	eventually(t, "the process is stopped", func() bool { return procState(pid) == "T" })
	signal("cont")
	eventually(t, "the process runs again", func() bool { s := procState(pid); return s != "T" && s != "" })
	for _, name := range []string{"usr3", "TERM", "", "9"} {
		_, err := e.m.Signal(alice, SignalRequest{ID: id, Signal: name})
		wantErrContaining(t, err, "unknown signal", "use one of term, hup, int, usr1, usr2, stop, cont, kill")
	}
	signal("term")
	w, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: id})
	if err != nil || !sameInt(w.Signal, intp(15)) {
		t.Fatalf("wait: %+v, %v", w, err)
	}
	_, err = e.m.Signal(alice, SignalRequest{ID: id, Signal: "term"})
	wantErr(t, err, "cannot signal background process 1: it has exited")
}

// TestKill: kill ends the tree, includes the output written before it, and forgets the id.
func TestKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m, grandchild := marker(), marker()
	id := e.background(t, "sh", "-c", "sleep "+grandchild+" & echo hello; echo world >&2; exec sleep "+m)
	waitRunning(t, m) // the shell has written both lines: it exec'd the sleep after them
	res, err := e.m.Kill(alice, id)
	if err != nil {
		t.Fatal(err)
	}
	want := KillResult{Killed: true, Stdout: "hello\n", Stderr: "world\n"}
	if res.Killed != want.Killed || res.Stdout != want.Stdout || res.Stderr != want.Stderr || res.ExitCode != nil || !sameInt(res.Signal, intp(9)) {
		t.Fatalf("got %+v (signal %v), want %+v with signal 9", res, deref(res.Signal), want)
	}
	noSurvivors(t, m, grandchild)
	_, err = e.m.ReadLogs(alice, id)
	wantErr(t, err, "no background process with id 1")
	_, err = e.m.Kill(alice, id)
	wantErr(t, err, "no background process with id 1")

	exited := e.background(t, "sh", "-c", "echo bye; exit 4")
	if _, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: exited}); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.WriteStdin(context.Background(), alice, WriteStdinRequest{ID: exited, Data: "late"})
	wantErr(t, err, "cannot write to background process 2: it has exited")
	res, err = e.m.Kill(alice, exited)
	if err != nil || res.Killed || !sameInt(res.ExitCode, intp(4)) || res.Stdout != "bye\n" {
		t.Fatalf("kill of an exited process: %+v, %v", res, err)
	}
}

// TestLimit: at most MaxBackground live background processes; a kill, or reading the end of
// an exited one, makes room.
func TestLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxBackground = 2 })
	first := e.background(t, "sleep", marker())
	e.background(t, "sleep", marker())
	_, err := e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "sleep", Args: []string{marker()}})
	wantErr(t, err, "background process limit reached (max 2)")
	_, err = e.m.SpawnBackground(context.Background(), bob, SpawnRequest{Cmd: "sleep", Args: []string{marker()}})
	wantErr(t, err, "background process limit reached (max 2)") // the limit is the capsule's
	if _, err := e.m.Kill(alice, first); err != nil {
		t.Fatal(err)
	}
	short := e.background(t, "true")
	if _, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: short}); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "true"})
	wantErr(t, err, "background process limit reached (max 2)") // exited, but not yet reported
	if logs, err := e.m.ReadLogs(alice, short); err != nil || logs.Running {
		t.Fatalf("read_logs: %+v, %v", logs, err)
	}
	e.background(t, "true")
	if logs, err := e.m.ReadLogs(alice, short); err != nil || logs.Running || !sameInt(logs.ExitCode, intp(0)) {
		t.Fatalf("read_logs of a reported process: %+v, %v", logs, err)
	}
	if res, err := e.m.Kill(alice, short); err != nil || res.Killed {
		t.Fatalf("kill of a reported process: %+v, %v", res, err)
	}

	none := newEnv(t, func(c *Config) { c.MaxBackground = 0 })
	_, err = none.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "true"})
	wantErr(t, err, "background process limit reached (max 0)")
}

// TestRetainedExited: reported processes beyond RetainedExited are forgotten, oldest first.
func TestRetainedExited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxBackground = 1 })
	var ids []uint64
	for range RetainedExited + 2 {
		id := e.background(t, "true")
		if _, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.ReadLogs(alice, id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, id := range ids {
		_, err := e.m.ReadLogs(alice, id)
		if forgotten := i < 2; forgotten != (err != nil) {
			t.Errorf("id %d: error %v, want forgotten %v", id, err, forgotten)
		}
	}
}

// TestOwnership: a process exists only for the principal that started it; ids start at 1 and
// are never reused.
func TestOwnership(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.background(t, "sleep", marker())
	if id != 1 {
		t.Fatalf("first id %d, want 1", id)
	}
	for _, tt := range []struct {
		principal string
		id        uint64
	}{{bob, id}, {alice, 42}, {alice, 0}} {
		want := "no background process with id " + itoa(int(tt.id))
		_, err := e.m.ReadLogs(tt.principal, tt.id)
		wantErr(t, err, want)
		_, err = e.m.Kill(tt.principal, tt.id)
		wantErr(t, err, want)
		_, err = e.m.Wait(context.Background(), tt.principal, WaitRequest{ID: tt.id, TimeoutMS: u64p(0)})
		wantErr(t, err, want)
		_, err = e.m.Signal(tt.principal, SignalRequest{ID: tt.id, Signal: "kill"})
		wantErr(t, err, want)
		_, err = e.m.WriteStdin(context.Background(), tt.principal, WriteStdinRequest{ID: tt.id, Data: "x"})
		wantErr(t, err, want)
	}
	if w, err := e.m.Wait(context.Background(), alice, WaitRequest{ID: id, TimeoutMS: u64p(0)}); err != nil || !w.Running {
		t.Fatalf("bob's requests touched alice's process: %+v, %v", w, err)
	}
	if _, err := e.m.Kill(alice, id); err != nil {
		t.Fatal(err)
	}
	if next := e.background(t, "true"); next != 2 {
		t.Fatalf("id after a kill %d, want 2", next)
	}
	_, err := e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "true", TimeoutMS: u64p(10)})
	wantErr(t, err, "timeout_ms is not supported by spawn_background: use wait with timeout_ms, then kill")
}
