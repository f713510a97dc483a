package callwire

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/astrid-go/astrid/shared/pb"
)

// MaxLogBatch is the most log lines one Log frame carries: the shim sends a batch when it holds
// this many, and the host refuses a frame with more (a violation) before it decodes it, so what
// one frame makes the host allocate is bounded by the count as well as by MaxHostFrameBytes (a
// frame of empty lines would otherwise decode into some 40 times its size).
const MaxLogBatch = 256

// fieldEntries is the field number of pb.LogRequest's entries.
const fieldEntries = 1

// LogFunc writes the lines of one Log frame to the log of the shim's instance.
type LogFunc func(req *pb.LogRequest)

// HandleLogs makes Serve hand the shim's Log frames to log; call it before Serve. Without it a
// Log frame is a violation.
func (e *HostEnd) HandleLogs(log LogFunc) { e.log = log }

// SendLog sends a batch of the capsule's log lines (at most MaxLogBatch) as a Log frame.
func (e *ShimEnd) SendLog(req *pb.LogRequest) error {
	if e == nil {
		return status.Error(codes.FailedPrecondition, "the shim has no call connection to the host")
	}
	return e.c.WriteFrame(Log, 0, req)
}

// decodeLog decodes the body of a Log frame, refusing one of more than MaxLogBatch lines
// before it allocates them.
func decodeLog(body []byte) (*pb.LogRequest, error) {
	lines := 0
	for b := body; len(b) > 0; {
		num, _, n := protowire.ConsumeField(b)
		if n < 0 {
			return nil, fmt.Errorf("decode a %s frame: %w", Log, protowire.ParseError(n))
		}
		if num == fieldEntries {
			if lines++; lines > MaxLogBatch {
				return nil, fmt.Errorf("decode a %s frame: more than %d lines (a shim sends at most %d per frame)", Log, MaxLogBatch, MaxLogBatch)
			}
		}
		b = b[n:]
	}
	req := &pb.LogRequest{}
	if err := Decode(Log, body, req); err != nil {
		return nil, err
	}
	return req, nil
}
