package callwire

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestAppendPublicationIsProto: a batch encoded by AppendPublication is byte for byte what
// proto.Marshal makes of the same pb.IpcPublishRequest, and DecodePublishes reads it back.
func TestAppendPublicationIsProto(t *testing.T) {
	tests := []struct {
		name string
		pubs []*pb.IpcPublication
	}{
		{"one", []*pb.IpcPublication{{Topic: "a.b", Payload: []byte(`{"x":1}`)}}},
		{"empty topic and payload", []*pb.IpcPublication{{}, {Topic: "t"}, {Payload: []byte("1")}}},
		{"long payload", []*pb.IpcPublication{{Topic: "a", Payload: bytes.Repeat([]byte("x"), 70000)}}},
		{"many", func() (ps []*pb.IpcPublication) {
			for i := range 300 {
				ps = append(ps, &pb.IpcPublication{Topic: fmt.Sprintf("t.%d", i), Payload: []byte(strings.Repeat("y", i))})
			}
			return ps
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pb.IpcPublishRequest{Messages: tc.pubs})
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, p := range tc.pubs {
				got = AppendPublication(got, p.Topic, p.Payload)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendPublication:\n got %x\nwant %x", got, want)
			}
			dec, err := DecodePublishes(got, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, dec, tc.pubs)
		})
	}
}

// TestDecodePublishesRefuses: bodies a correct shim never sends.
func TestDecodePublishesRefuses(t *testing.T) {
	var tooMany []byte
	for range MaxPublishBatch + 1 {
		tooMany = AppendPublication(tooMany, "a.b", []byte("1"))
	}
	var atLimit []byte
	for range MaxPublishBatch {
		atLimit = AppendPublication(atLimit, "a.b", []byte("1"))
	}
	badTopic := protowire.AppendTag(nil, fieldTopic, protowire.BytesType)
	badTopic = protowire.AppendBytes(badTopic, []byte{0xff})
	tests := []struct {
		name string
		body []byte
		want string // "" means accepted
	}{
		{"at the limit", atLimit, ""},
		{"one past the limit", tooMany, "more than 512 publications"},
		{"truncated", []byte{0x0a, 0x05, 0x0a}, "malformed"},
		{"topic not UTF-8", protowire.AppendBytes([]byte{0x0a}, badTopic), "not valid UTF-8"},
		{"field number 0", []byte{0x02, 0x00}, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePublishes(tc.body, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func checkSame(t *testing.T, got []Publication, want []*pb.IpcPublication) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d publications, want %d", len(got), len(want))
	}
	for i := range got {
		if string(got[i].Topic) != want[i].Topic || !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Fatalf("publication %d: %q %q, want %q %q", i, got[i].Topic, got[i].Payload, want[i].Topic, want[i].Payload)
		}
	}
}

// FuzzDecodePublishes: the hand-written decoder accepts exactly what proto.Unmarshal accepts
// (within MaxPublishBatch publications) and decodes it to the same publications.
func FuzzDecodePublishes(f *testing.F) {
	f.Add(AppendPublication(AppendPublication(nil, "a.b", []byte(`{"x":1}`)), "", nil))
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0x1b, 0x1c, 0x0a, 0x00}) // a group inside a publication
	f.Add([]byte{0x13, 0x14})                         // a group at the top
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff})       // topic not UTF-8
	f.Add([]byte{0x09, 0, 0, 0, 0, 0, 0, 0, 0})       // field 1 with the wrong wire type
	// The shim's own form (decodeAppended), with a length of two varint bytes, then that form
	// followed by another field or with the fields swapped, which only the general loop reads.
	f.Add(AppendPublication(nil, "a.b", make([]byte, 200)))
	f.Add([]byte{0x0a, 0x0a, 0x0a, 0x01, 'a', 0x12, 0x02, '{', '}', 0x0a, 0x01, 'b'})
	f.Add([]byte{0x0a, 0x07, 0x12, 0x02, '{', '}', 0x0a, 0x01, 'a'})
	f.Fuzz(func(t *testing.T, body []byte) {
		var want pb.IpcPublishRequest
		werr := proto.Unmarshal(body, &want)
		got, err := DecodePublishes(body, nil)
		if werr == nil && len(want.Messages) > MaxPublishBatch {
			if err == nil {
				t.Fatalf("%d publications accepted", len(want.Messages))
			}
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("DecodePublishes: %v; proto.Unmarshal: %v", err, werr)
		}
		if err == nil {
			checkSame(t, got, want.Messages)
		}
	})
}

// BenchmarkDecodePublishes decodes a full Publish frame of 256-byte payloads as a shim sends it.
func BenchmarkDecodePublishes(b *testing.B) {
	var body []byte
	for range MaxPublishBatch {
		body = AppendPublication(body, "test.v1.tp", make([]byte, 256))
	}
	out := make([]Publication, 0, MaxPublishBatch)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = DecodePublishes(body, out); err != nil || len(out) != MaxPublishBatch {
			b.Fatal(err, len(out))
		}
	}
}
