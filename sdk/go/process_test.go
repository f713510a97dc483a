package astrid

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEncodeCommand(t *testing.T) {
	for _, c := range []struct {
		name string
		cmd  Command
		sync bool
		want string // the JSON request, or the start of the error message
		err  bool
	}{
		{"minimal", Command{Cmd: "/bin/true"}, true, `{"cmd":"/bin/true"}`, false},
		{"full", Command{
			Cmd:     "/bin/sh",
			Args:    []string{"-c", "echo $X"},
			Env:     map[string]string{"X": "é", "A": ""},
			Dir:     "sub/dir",
			Stdin:   "line\n",
			Timeout: 1500 * time.Microsecond,
		}, true, `{"cmd":"/bin/sh","args":["-c","echo $X"],"env":{"A":"","X":"é"},"cwd":"sub/dir","stdin":"line\n","timeout_ms":2}`, false},
		{"empty args and env left out", Command{Cmd: "ls", Args: []string{}, Env: map[string]string{}}, true, `{"cmd":"ls"}`, false},
		{"background", Command{Cmd: "/bin/sleep", Args: []string{"9"}}, false, `{"cmd":"/bin/sleep","args":["9"]}`, false},
		{"whole seconds", Command{Cmd: "x", Timeout: 3 * time.Second}, true, `{"cmd":"x","timeout_ms":3000}`, false},

		{"empty cmd", Command{Args: []string{"x"}}, true, "astrid: Spawn: empty Cmd", true},
		{"negative timeout", Command{Cmd: "x", Timeout: -time.Second}, true, "astrid: Spawn x: negative Timeout", true},
		{"background timeout", Command{Cmd: "x", Timeout: time.Second}, false, "astrid: Spawn x: a background process takes no Timeout", true},
		{"bad arg", Command{Cmd: "x", Args: []string{"ok", "a\xffb"}}, true, "astrid: Spawn x: Args[1] is not UTF-8", true},
		{"bad env", Command{Cmd: "x", Env: map[string]string{"K": "\xc3"}}, true, "astrid: Spawn x: an Env entry is not UTF-8", true},
		{"bad stdin", Command{Cmd: "x", Stdin: "\xff"}, true, "astrid: Spawn x: Stdin is not UTF-8", true},
		{"bad dir", Command{Cmd: "x", Dir: "\xff"}, true, "astrid: Spawn x: Dir is not UTF-8", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := encodeCommand("Spawn", c.cmd, c.sync)
			if c.err {
				if err == nil || !strings.HasPrefix(err.Error(), c.want) {
					t.Fatalf("error = %v, want one starting with %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.want {
				t.Errorf("request = %s, want %s", b, c.want)
			}
		})
	}
}

func TestProcessRequests(t *testing.T) {
	data := "hé\n"
	empty := ""
	for _, c := range []struct {
		name string
		req  processRequest
		want string
	}{
		{"read logs, kill", processRequest{ID: 3}, `{"id":3}`},
		{"wait as long as the call may", withID(waitRequest(0), 3), `{"id":3}`},
		{"wait without waiting", withID(waitRequest(-time.Second), 3), `{"id":3,"timeout_ms":0}`},
		{"wait rounds up", withID(waitRequest(200*time.Millisecond+1), 3), `{"id":3,"timeout_ms":201}`},
		{"wait under a millisecond", withID(waitRequest(time.Nanosecond), 3), `{"id":3,"timeout_ms":1}`},
		{"signal", processRequest{ID: 4, Signal: SignalUsr1}, `{"id":4,"signal":"usr1"}`},
		{"write stdin", processRequest{ID: 5, Data: &data}, `{"id":5,"data":"hé\n"}`},
		{"close stdin", processRequest{ID: 5, Data: &empty, Close: true}, `{"id":5,"data":"","close":true}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := json.Marshal(c.req)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.want {
				t.Errorf("request = %s, want %s", b, c.want)
			}
		})
	}
}

// withID returns req for process id, as Process.call sends it.
func withID(req processRequest, id uint64) processRequest {
	req.ID = id
	return req
}

func TestDecodeProcessResults(t *testing.T) {
	for _, c := range []struct {
		name   string
		result string
		into   any // a pointer to the value the method starts from
		want   any
	}{
		{"spawn", `{"stdout":"a\n","stderr":"","exit_code":3,"truncated":false}`,
			&ProcessResult{}, &ProcessResult{Stdout: "a\n", ExitCode: 3}},
		{"spawn killed, timed out", `{"stdout":"","stderr":"x","exit_code":-1,"signal":9,"truncated":true,"timed_out":true}`,
			&ProcessResult{}, &ProcessResult{Stderr: "x", ExitCode: -1, Signal: 9, Truncated: true, TimedOut: true}},
		{"logs running", `{"stdout":"tick 1\n","stderr":"","running":true,"exit_code":null}`,
			&Logs{ExitCode: -1}, &Logs{Stdout: "tick 1\n", Running: true, ExitCode: -1}},
		{"logs exited", `{"stdout":"","stderr":"","running":false,"exit_code":0}`,
			&Logs{ExitCode: -1}, &Logs{ExitCode: 0}},
		{"logs signalled", `{"stdout":"","stderr":"","running":false,"exit_code":null,"signal":15}`,
			&Logs{ExitCode: -1}, &Logs{ExitCode: -1, Signal: 15}},
		{"wait timed out", `{"running":true,"exit_code":null,"signal":null,"timed_out":true}`,
			&WaitResult{ExitCode: -1}, &WaitResult{Running: true, ExitCode: -1, TimedOut: true}},
		{"wait exited", `{"running":false,"exit_code":2,"signal":null,"timed_out":false}`,
			&WaitResult{ExitCode: -1}, &WaitResult{ExitCode: 2}},
		{"kill", `{"killed":true,"exit_code":null,"stdout":"rest","stderr":""}`,
			&KillResult{ExitCode: -1}, &KillResult{Killed: true, ExitCode: -1, Stdout: "rest"}},
		{"unknown fields", `{"killed":true,"exit_code":0,"stdout":"","stderr":"","pid":12}`,
			&KillResult{ExitCode: -1}, &KillResult{Killed: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := decodeResult("Op", []byte(c.result), c.into); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.into, c.want) {
				t.Errorf("decoded %+v, want %+v", c.into, c.want)
			}
		})
	}
}

func TestDecodeResultError(t *testing.T) {
	for _, b := range []string{``, `not json`, `{"exit_code":"0"}`} {
		err := decodeResult("Spawn", []byte(b), new(ProcessResult))
		if err == nil || !strings.HasPrefix(err.Error(), "astrid: Spawn: decoding the host's result") {
			t.Errorf("decoding %q: error = %v", b, err)
		}
	}
}

func TestProcessResultSuccess(t *testing.T) {
	for _, c := range []struct {
		r    ProcessResult
		want bool
	}{
		{ProcessResult{}, true},
		{ProcessResult{ExitCode: 1}, false},
		{ProcessResult{ExitCode: -1, Signal: 9}, false},
		{ProcessResult{TimedOut: true}, false},
	} {
		if got := c.r.Success(); got != c.want {
			t.Errorf("%+v.Success() = %v, want %v", c.r, got, c.want)
		}
	}
}

func TestStdinChunks(t *testing.T) {
	for _, c := range []struct {
		name  string
		data  string
		limit int
		want  []string
	}{
		{"empty", "", 4, nil},
		{"fits", "abcd", 4, []string{"abcd"}},
		{"split", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"keeps a character whole", "abcé", 4, []string{"abc", "é"}},
		{"four-byte character", "a😀b", 4, []string{"a", "😀", "b"}},
		{"characters only", "ééé", 4, []string{"éé", "é"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, ch := range stdinChunks([]byte(c.data), c.limit) {
				got = append(got, string(ch))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("chunks = %q, want %q", got, c.want)
			}
		})
	}
}

// The checks that Process makes before it asks the host: none of these
// reaches the kernel, which would panic outside a capsule.
func TestProcessChecks(t *testing.T) {
	p := FindProcess(7)
	if p.ID() != 7 {
		t.Errorf("ID = %d, want 7", p.ID())
	}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown signal", p.Signal("quit"), `astrid: Signal: unknown signal "quit"`},
		{"empty signal", p.Signal(""), `astrid: Signal: unknown signal ""`},
		{"stdin not UTF-8", func() error { _, err := p.WriteStdin([]byte{0xff}); return err }(), "astrid: WriteStdin: data is not UTF-8"},
		{"nothing to write", func() error { _, err := p.WriteStdin(nil); return err }(), ""},
		{"nil process", func() error { _, err := (*Process)(nil).ReadLogs(); return err }(), "astrid: ReadLogs: nil Process"},
		{"killed", func() error { _, err := (&Process{id: 2, killed: true}).Wait(0); return err }(), "astrid: Wait: process 2 was killed"},
		{"spawn without cmd", func() error { _, err := Spawn(Command{}); return err }(), "astrid: Spawn: empty Cmd"},
		{"background with timeout", func() error { _, err := SpawnBackground(Command{Cmd: "x", Timeout: 1}); return err }(), "astrid: SpawnBackground x: a background process takes no Timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				if c.err != nil {
					t.Fatalf("error = %v, want none", c.err)
				}
				return
			}
			if c.err == nil || !strings.HasPrefix(c.err.Error(), c.want) {
				t.Errorf("error = %v, want one starting with %q", c.err, c.want)
			}
		})
	}
	for _, s := range []Signal{SignalTerm, SignalHup, SignalInt, SignalUsr1, SignalUsr2, SignalStop, SignalCont, SignalKill} {
		if !s.valid() {
			t.Errorf("%s is not valid", s)
		}
	}
}
