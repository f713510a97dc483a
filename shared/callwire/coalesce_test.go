package callwire

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestBytesFieldFrameSameAsMarshal: WriteBytesFieldFrame sends exactly the body proto.Marshal
// gives for a HostCallResponse with only its result set, at the varint's size boundaries.
func TestBytesFieldFrameSameAsMarshal(t *testing.T) {
	if n := (&pb.HostCallResponse{}).ProtoReflect().Descriptor().Fields().ByName("result").Number(); n != fieldHostCallResult {
		t.Fatalf("HostCallResponse.result is field %d, fieldHostCallResult %d", n, fieldHostCallResult)
	}
	a, b := pair(t)
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 3 << 20} {
		value := bytes.Repeat([]byte{'v'}, n)
		if err := a.DeferEmptyFrame(Published, 9); err != nil { // goes first, in the same write
			t.Fatal(err)
		}
		written := make(chan error, 1)
		go func() { written <- a.WriteBytesFieldFrame(HostResult, 5, fieldHostCallResult, value) }()
		kind, id, body, err := b.ReadFrame(MaxShimFrameBytes)
		if err != nil || kind != Published || id != 9 || len(body) != 0 {
			t.Fatalf("%d bytes: the deferred frame came as %v %d (%d bytes), %v", n, kind, id, len(body), err)
		}
		kind, id, body, err = b.ReadFrame(MaxShimFrameBytes)
		if werr := <-written; werr != nil {
			t.Fatal(werr)
		}
		want, _ := proto.Marshal(&pb.HostCallResponse{Result: value})
		if err != nil || kind != HostResult || id != 5 || !bytes.Equal(body, want) {
			t.Fatalf("%d bytes: %v %d, a body of %d bytes (want %d), %v", n, kind, id, len(body), len(want), err)
		}
	}
}

// acks records the answers to a shim's Publish frames (PublishAcks).
type acks struct {
	mu  sync.Mutex
	ids []uint64
}

func (a *acks) Published(id uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.ids = append(a.ids, id)
	}
}

func (a *acks) Ended(error) {}

// TestHostCallAfterPublish: a batch sent in the same write as a host call is published before
// the host call runs, and its answer comes at the latest with the host call's; without a batch
// the host call goes alone. The host finds no violation.
func TestHostCallAfterPublish(t *testing.T) {
	hc, sc := pair(t)
	host, shim := NewHostEnd(hc), NewShimEnd(sc)
	var published [][]byte // payloads, in the order the host published them
	host.HandlePublishes(func(pubs []Publication) error {
		for _, p := range pubs {
			published = append(published, bytes.Clone(p.Payload))
		}
		return nil
	})
	var violations []error
	hostServed := make(chan error, 1)
	go func() {
		hostServed <- host.Serve(func(_ context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
			// Run on the reader's goroutine, after the frames before it: what was published by
			// now is the answer.
			return &pb.HostCallResponse{Result: bytes.Join(published, []byte(","))}, nil
		}, func(err error) error { violations = append(violations, err); return err })
	}()
	a := &acks{}
	shim.SetPublishAcks(a)
	shimServed := make(chan error, 1)
	go func() { shimServed <- shim.Serve(func(*pb.InvokeRequest, func(*pb.InvokeResponse)) {}) }()
	t.Cleanup(func() {
		host.Close()
		shim.Close()
		<-hostServed
		<-shimServed
	})
	for _, c := range []struct {
		name     string
		id       uint64
		payloads []string
		want     string
	}{
		{"a batch", 1, []string{"1", "2"}, "1,2"},
		{"no batch", 0, nil, "1,2"},
		{"another batch", 2, []string{"3"}, "1,2,3"},
	} {
		var frame []byte
		if c.payloads != nil {
			frame = make([]byte, HeaderBytes)
			for _, p := range c.payloads {
				frame = AppendPublication(frame, "a.b", []byte(p))
			}
		}
		calls := 0
		resp, err := shim.HostCallAfterPublish(context.Background(), c.id, frame, func(err error) {
			calls++
			if err != nil {
				t.Errorf("%s: the write failed: %v", c.name, err)
			}
		}, &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_KV_GET})
		if err != nil || string(resp.Result) != c.want || calls != 1 {
			t.Fatalf("%s: %q, %v (sent called %d times), want %q", c.name, resp.GetResult(), err, calls, c.want)
		}
		a.mu.Lock()
		got := len(a.ids)
		a.mu.Unlock()
		if c.id != 0 && got != int(c.id) { // the answer came with the host call's, before it
			t.Fatalf("%s: answers to publish frames %v, want up to %d", c.name, a.ids, c.id)
		}
	}
	if len(violations) != 0 {
		t.Fatal(violations)
	}
}

// TestResultOnly: the shim decodes a result-only HostResult body itself, giving what
// proto.Unmarshal gives: a large result as a view of the frame, a small one as a copy. It leaves
// every other body to proto.Unmarshal.
func TestResultOnly(t *testing.T) {
	big := bytes.Repeat([]byte{'r'}, takeResultBytes)
	marshal := func(m *pb.HostCallResponse) []byte { b, _ := proto.Marshal(m); return b }
	withFailed := append(marshal(&pb.HostCallResponse{Result: big}), 0x10, 0x01)
	nonMinimal := append([]byte{0x0a, 0x80 | byte(len(big)&0x7f), 0x80 | byte(len(big)>>7&0x7f), 0x80 | byte(len(big)>>14), 0x00}, big...)
	otherField := append([]byte{0x1a}, marshal(&pb.HostCallResponse{Result: big})[1:]...) // the bytes as field 3, error
	for _, c := range []struct {
		name string
		body []byte
		own  bool // decoded by resultOnly
		view bool
	}{
		{"large result only", marshal(&pb.HostCallResponse{Result: big}), true, true},
		{"small result", marshal(&pb.HostCallResponse{Result: []byte("small")}), true, false},
		{"empty result", []byte{0x0a, 0x00}, true, false},
		{"no fields", nil, false, false},
		{"large result and failed", withFailed, false, false},
		{"small result and failed", append(marshal(&pb.HostCallResponse{Result: []byte("small")}), 0x10, 0x01), false, false},
		{"failed only", marshal(&pb.HostCallResponse{Failed: true, Error: "no"}), false, false},
		{"non-minimal length (proto.Unmarshal takes it too)", nonMinimal, true, true},
		{"another field", otherField, false, false},
		{"length past the body", []byte{0x0a, 0x05, 'a', 'b'}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, view := resultOnly(c.body)
			if (got != nil) != c.own || view != c.view {
				t.Fatalf("decoded: %v, as a view: %v; want %v, %v", got != nil, view, c.own, c.view)
			}
			var want pb.HostCallResponse
			if err := proto.Unmarshal(c.body, &want); err != nil {
				if got != nil {
					t.Fatalf("decoded a body proto.Unmarshal refuses (%v)", err)
				}
				return
			}
			if got != nil && !proto.Equal(got, &want) {
				t.Fatalf("got a result of %d bytes, want %d", len(got.Result), len(want.Result))
			}
			if got != nil && !view && len(got.Result) > 0 && &got.Result[0] == &c.body[len(c.body)-len(got.Result)] {
				t.Fatal("a small result is a view of the frame, which the next frame is read over")
			}
		})
	}
}

// TestTakeAndGiveBody: a body taken is not read over by the next frame, and once given back it
// is the buffer a later frame is read into.
func TestTakeAndGiveBody(t *testing.T) {
	a, b := pair(t)
	read := func(fill byte) []byte {
		t.Helper()
		written := make(chan error, 1)
		go func() {
			written <- a.WriteBytesFieldFrame(HostResult, 1, fieldHostCallResult, bytes.Repeat([]byte{fill}, takeResultBytes))
		}()
		_, _, body, err := b.ReadFrame(MaxShimFrameBytes)
		if werr := <-written; err != nil || werr != nil {
			t.Fatal(err, werr)
		}
		return body
	}
	first := read('a')
	b.TakeBody()
	second := read('b')
	if &first[0] == &second[0] || first[len(first)-1] != 'a' {
		t.Fatal("the frame after a taken body was read over it")
	}
	b.TakeBody()
	b.GiveBody(first)
	if third := read('c'); &third[0] != &first[0] {
		t.Fatal("the body given back was not reused")
	}
}

// TestGiveBodyViewKeepsBuffer: a taken body given back as the result inside it (resultOnly's view,
// what the shim recycles) is kept whole, and a new buffer has room for a somewhat larger frame:
// a stream of results, each a little larger than the last or smaller, is read into one buffer.
// Before, the view's capacity, a few bytes short of the buffer's, was kept, and each result as
// large as the one before got a new buffer.
func TestGiveBodyViewKeepsBuffer(t *testing.T) {
	a, b := pair(t)
	var first []byte
	const m = takeResultBytes + 64
	for i, n := range []int{m, m, m + 3, m + 100, m - 7, m + 4096} {
		written := make(chan error, 1)
		go func() {
			written <- a.WriteBytesFieldFrame(HostResult, 1, fieldHostCallResult, bytes.Repeat([]byte{byte('a' + i)}, n))
		}()
		_, _, body, err := b.ReadFrame(MaxShimFrameBytes)
		if werr := <-written; err != nil || werr != nil {
			t.Fatal(err, werr)
		}
		resp, _ := resultOnly(body)
		if resp == nil || len(resp.Result) != n || resp.Result[n-1] != byte('a'+i) {
			t.Fatalf("frame %d: the result of %d bytes did not come whole", i, n)
		}
		if i == 0 {
			first = body
		} else if &body[0] != &first[0] {
			t.Fatalf("frame %d (%d bytes) was read into a new buffer", i, n)
		}
		b.TakeBody()
		b.GiveBody(resp.Result)
	}
}

// TestDeferredFramesBounded: a Conn holds back at most maxDeferredFrames frames. A hostile shim
// that keeps the host's read buffer from emptying (batch after batch, each followed by a host
// call) would otherwise grow the host's deferred answers without end; past the bound they are
// written at once, in order, with no other frame written to carry them.
func TestDeferredFramesBounded(t *testing.T) {
	a, b := pair(t)
	for round := range 3 {
		for k := range maxDeferredFrames - 1 {
			if err := a.DeferEmptyFrame(Published, uint64(k)); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(a.deferred) / HeaderBytes; got != maxDeferredFrames-1 {
			t.Fatalf("round %d: %d frames held back, want %d", round, got, maxDeferredFrames-1)
		}
		// The frame that reaches the bound sends them all: the reader gets each, in order.
		done := make(chan error, 1)
		go func() { done <- a.DeferEmptyFrame(Published, maxDeferredFrames-1) }()
		for k := range maxDeferredFrames {
			kind, id, body, err := b.ReadFrame(MaxShimFrameBytes)
			if err != nil || kind != Published || id != uint64(k) || len(body) != 0 {
				t.Fatalf("round %d, frame %d: %v %d (%d bytes), %v", round, k, kind, id, len(body), err)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(a.deferred) != 0 {
			t.Fatalf("round %d: %d bytes still held back after the write", round, len(a.deferred))
		}
	}
}

// BenchmarkDecodeHostResult: the shim's decode of a small result-only answer (a recv's
// one-message envelope), by resultOnly against proto.Unmarshal, its baseline in the same run.
func BenchmarkDecodeHostResult(b *testing.B) {
	env := []byte(`{"messages":[{"topic":"test.v1.ping","payload":{"ping":1},"source_id":"0f8e4c2a-5b1d-4e6f-9a3c-7d2b1e0f4a5c","timestamp":"2026-12-07T14:00:00.123456789Z"}],"dropped":0,"lagged":0}`)
	body, err := proto.Marshal(&pb.HostCallResponse{Result: env})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("resultOnly", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if resp, _ := resultOnly(body); resp == nil {
				b.Fatal("not decoded")
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := proto.Unmarshal(body, &pb.HostCallResponse{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
