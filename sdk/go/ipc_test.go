package astrid

import (
	"encoding/json"
	"testing"
	"time"
)

// An envelope as upstream astrid 0.5 writes it (the shape is in docs/abi.md, astrid_ipc_poll).
const sampleEnvelope = `{"messages":[{"topic":"foo.bar","payload":{"type":"custom","data":{"x":1}},"signature":null,` +
	`"source_id":"6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f","timestamp":"2026-03-25T10:00:00.123456789Z","seq":42,"principal":"default"},` +
	`{"topic":"client.v1.connected","payload":{"type":"connect"},"signature":null,` +
	`"source_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-03-25T10:00:01Z","seq":43}],"dropped":0,"lagged":7}`

func TestDecodeEnvelope(t *testing.T) {
	var env Envelope
	if err := json.Unmarshal([]byte(sampleEnvelope), &env); err != nil {
		t.Fatal(err)
	}
	if env.Dropped != 0 || env.Lagged != 7 || len(env.Messages) != 2 {
		t.Fatalf("envelope = %+v", env)
	}
	m := env.Messages[0]
	wantTime := time.Date(2026, 3, 25, 10, 0, 0, 123456789, time.UTC)
	if m.Topic != "foo.bar" || m.Seq != 42 || m.Principal != "default" ||
		m.SourceID != "6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f" || !m.Timestamp.Equal(wantTime) {
		t.Errorf("message 0 = %+v", m)
	}
	var v struct{ X int }
	if err := m.Decode(&v); err != nil || v.X != 1 {
		t.Errorf("Decode = %+v, %v", v, err)
	}
	if p := env.Messages[1].Principal; p != "" {
		t.Errorf("system event principal = %q, want empty", p)
	}
}

func TestMessageData(t *testing.T) {
	for _, c := range []struct{ payload, want string }{
		{`{"type":"custom","data":{"n":3}}`, `{"n":3}`},
		{`{"type":"custom","data":"hello"}`, `"hello"`},
		{`{"type":"custom","data":null}`, `null`},
		{`{"type":"custom"}`, `null`},
		{`{"type":"raw_json","status":"ready"}`, `{"status":"ready"}`},
		{`{"type":"connect"}`, `{"type":"connect"}`},
		{`{"type":"user_input","text":"hi","session_id":"default"}`, `{"type":"user_input","text":"hi","session_id":"default"}`},
		{`{"data":1}`, `{"data":1}`},
		{`{"type":7,"data":1}`, `{"type":7,"data":1}`},
		{`"bare"`, `"bare"`},
		{`[1,2]`, `[1,2]`},
	} {
		if got := string(Message{Payload: json.RawMessage(c.payload)}.Data()); got != c.want {
			t.Errorf("Data of %s = %s, want %s", c.payload, got, c.want)
		}
	}
}

func TestInterceptorHandleJSON(t *testing.T) {
	var hs []InterceptorHandle
	if err := json.Unmarshal([]byte(`[{"handle_id":1,"action":"handle_x","topic":"user.v1.prompt"}]`), &hs); err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0] != (InterceptorHandle{HandleID: 1, Action: "handle_x", Topic: "user.v1.prompt"}) {
		t.Fatalf("handles = %+v", hs)
	}
	s := hs[0].Subscription()
	if s.Handle() != 1 || s.Pattern() != "user.v1.prompt" {
		t.Errorf("subscription = %+v", s)
	}
	if err := s.Unsubscribe(); err == nil {
		t.Error("Unsubscribe of an interceptor's subscription: no error") // and no kernel call: that would panic here
	}
}

func TestRecvMillis(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{
		{-time.Second, 0}, {0, 0}, {time.Nanosecond, 1}, {time.Millisecond, 1}, {1500 * time.Microsecond, 2},
		{5 * time.Second, 5000}, {MaxRecvTimeout, 60000}, {time.Hour, 60000}, {1<<63 - 1, 60000},
	} {
		if got := recvMillis(c.d); got != c.want {
			t.Errorf("recvMillis(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestLocalErrors(t *testing.T) {
	// Each of these must fail before reaching the kernel, which panics here.
	if err := PublishJSON("", []byte(`1`)); err == nil {
		t.Error("PublishJSON with an empty topic: no error")
	}
	if err := Publish("a.b", func() {}); err == nil {
		t.Error("Publish of a func: no error")
	}
	if _, err := Subscribe(""); err == nil {
		t.Error("Subscribe of an empty pattern: no error")
	}
	closed := &Subscription{handle: 3, pattern: "a.b", closed: true}
	if _, err := closed.Poll(); err == nil {
		t.Error("Poll after Unsubscribe: no error")
	}
	if _, err := closed.Recv(time.Second); err == nil {
		t.Error("Recv after Unsubscribe: no error")
	}
	var nilSub *Subscription
	if _, err := nilSub.Poll(); err == nil {
		t.Error("Poll of a nil Subscription: no error")
	}
}
