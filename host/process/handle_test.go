package process

import (
	"context"
	"strings"
	"testing"
)

func TestOpNames(t *testing.T) {
	t.Parallel()
	want := []string{"astrid_spawn_host", "astrid_spawn_background_host", "astrid_read_process_logs_host",
		"astrid_kill_process_host", "astrid_wait_process_host", "astrid_signal_process_host", "astrid_write_process_stdin_host"}
	if len(Ops) != len(want) {
		t.Fatalf("%d ops, want %d", len(Ops), len(want))
	}
	for i, op := range Ops {
		if op.String() != want[i] {
			t.Errorf("op %d is %q, want %q", i, op, want[i])
		}
		if back, ok := OpByName(want[i]); !ok || back != op {
			t.Errorf("OpByName(%q) = %v, %v", want[i], back, ok)
		}
	}
	if _, ok := OpByName("astrid_spawn"); ok {
		t.Error("OpByName accepted an unknown name")
	}
	if got := Op(99).String(); got != "Op(99)" {
		t.Errorf("unknown op prints %q", got)
	}
}

// TestHandle drives every operation through the JSON entry point and checks the exact results.
func TestHandle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	call := func(op Op, principal, req, want string) {
		t.Helper()
		got, err := e.m.Handle(ctx, op, principal, []byte(req))
		if err != nil {
			t.Fatalf("%s %s: %v", op, req, err)
		}
		if string(got) != want {
			t.Fatalf("%s %s:\n got %s\nwant %s", op, req, got, want)
		}
	}
	call(Spawn, alice, `{"cmd":"sh","args":["-c","printf '<a href=\"x\">&</a>\\n'; exit 2"]}`,
		`{"stdout":"<a href=\"x\">&</a>\n","stderr":"","exit_code":2,"truncated":false}`)
	call(Spawn, alice, `{"cmd":"sh","args":["-c","kill -KILL $$"]}`,
		`{"stdout":"","stderr":"","exit_code":-1,"signal":9,"truncated":false}`)
	call(Spawn, alice, `{"cmd":"cat","stdin":"in","env":{"X":"1"},"cwd":".","timeout_ms":60000,"unknown":true}`,
		`{"stdout":"in","stderr":"","exit_code":0,"truncated":false}`)

	m := marker()
	call(SpawnBackground, alice, `{"cmd":"sh","args":["-c","echo ready; exec sleep `+m+`"]}`, `{"id":1}`)
	waitRunning(t, m)
	var logs LogsResult
	eventually(t, "the output is read", func() bool { logs, _ = e.m.ReadLogs(alice, 1); return logs.Stdout != "" })
	if logs != (LogsResult{Stdout: "ready\n", Running: true}) {
		t.Fatalf("read_logs: %+v", logs)
	}
	call(ReadLogs, alice, `{"id":1}`, `{"stdout":"","stderr":"","running":true,"exit_code":null}`)
	call(Wait, alice, `{"id":1,"timeout_ms":0}`, `{"running":true,"exit_code":null,"signal":null,"timed_out":true}`)
	call(Signal, alice, `{"id":1,"signal":"int"}`, `{"ok":true}`)
	call(Wait, alice, `{"id":1}`, `{"running":false,"exit_code":null,"signal":2,"timed_out":false}`)
	call(ReadLogs, alice, `{"id":1}`, `{"stdout":"","stderr":"","running":false,"exit_code":null,"signal":2}`)
	call(Kill, alice, `{"id":1}`, `{"killed":false,"exit_code":null,"signal":2,"stdout":"","stderr":""}`)

	call(SpawnBackground, alice, `{"cmd":"cat"}`, `{"id":2}`)
	call(WriteStdin, alice, `{"id":2,"data":"héllo\n","close":true}`, `{"written":7}`)
	call(Wait, alice, `{"id":2}`, `{"running":false,"exit_code":0,"signal":null,"timed_out":false}`)
	call(Kill, alice, `{"id":2}`, `{"killed":false,"exit_code":0,"stdout":"héllo\n","stderr":""}`)
}

func TestHandleErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		op        Op
		req, want string
	}{
		{Spawn, `{`, "failed to parse process request: unexpected end of JSON input"},
		{Spawn, `{"cmd":1}`, "failed to parse process request: "},
		{SpawnBackground, `[]`, "failed to parse process request: "},
		{ReadLogs, `{"id":"1"}`, "failed to parse read logs request: "},
		{Kill, `{"id":-1}`, "failed to parse kill request: "},
		{Wait, `{"id":1,"timeout_ms":-1}`, "failed to parse wait request: "},
		{Signal, `{"id":1,"signal":15}`, "failed to parse signal request: "},
		{WriteStdin, `{"id":1,"data":5}`, "failed to parse write stdin request: "},
		{ReadLogs, `{"id":1}` + strings.Repeat(" ", MaxIDRequestBytes), "read logs request too large: 264 bytes, at most 256"},
		{Kill, strings.Repeat(" ", MaxIDRequestBytes+1), "kill request too large: 257 bytes, at most 256"},
		{Spawn, strings.Repeat(" ", MaxSpawnRequestBytes+1), "process request too large: 10485761 bytes, at most 10485760"},
		{WriteStdin, strings.Repeat(" ", MaxWriteStdinRequestBytes+1), "write stdin request too large"},
		{Spawn, `null`, "Security Check Failed: capsule 'test-capsule' denied: host process '' not declared in manifest"},
		{ReadLogs, `{}`, "no background process with id 0"},
		{Signal, `{"id":7,"signal":"term"}`, "no background process with id 7"},
		{Op(42), `{}`, "unknown process operation 42"},
	}
	for _, tt := range tests {
		_, err := e.m.Handle(context.Background(), tt.op, alice, []byte(tt.req))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s %.40s: error %v, want one starting %q", tt.op, tt.req, err, tt.want)
		}
	}
}
