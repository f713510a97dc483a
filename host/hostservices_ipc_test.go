package host

import (
	"testing"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestEnvelopeBuffer: poll and recv get the instance's envelope buffer while it is free, a
// fresh one (nil) while it is out, and answered takes back only an IPC poll's or recv's result,
// and not one larger than keepEnvelopeBuffer.
func TestEnvelopeBuffer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		op       pb.HostOp
		failed   bool
		capacity int
		kept     bool
	}{
		{"recv", pb.HostOp_HOST_OP_IPC_RECV, false, 4096, true},
		{"poll", pb.HostOp_HOST_OP_IPC_POLL, false, 4096, true},
		{"largest kept", pb.HostOp_HOST_OP_IPC_RECV, false, keepEnvelopeBuffer, true},
		{"too large", pb.HostOp_HOST_OP_IPC_RECV, false, keepEnvelopeBuffer + 1, false},
		{"failed answer", pb.HostOp_HOST_OP_IPC_RECV, true, 4096, false},
		{"another host function", pb.HostOp_HOST_OP_KV_GET, false, 4096, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &hostServices{}
			if b := s.envBuf.take(); b != nil {
				t.Fatalf("a new instance's buffer is %d bytes, want none", cap(b))
			}
			buf := make([]byte, 10, tc.capacity)
			s.answered(&pb.HostCallRequest{Op: tc.op}, &pb.HostCallResponse{Result: buf, Failed: tc.failed})
			got := s.envBuf.take()
			if kept := cap(got) == tc.capacity && len(got) == 0; kept != tc.kept {
				t.Fatalf("after answered, take gives len %d cap %d; want the buffer kept = %v", len(got), cap(got), tc.kept)
			}
			if b := s.envBuf.take(); b != nil {
				t.Errorf("a second take while the buffer is out gives %d bytes, want none", cap(b))
			}
		})
	}
}
