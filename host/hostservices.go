package host

import (
	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/shared/pb"
)

// hostServices serves the host functions to one shim. Each shim connection gets its own value, so
// every request is attributed to the instance the connection belongs to, whatever the shim claims.
type hostServices struct {
	pb.UnimplementedHostServicesServer
	inst *Instance

	// envBuf is the buffer poll and recv encode envelopes into, reused once each answer is sent
	// (answered).
	envBuf envelopeBuffer
	// msgBuf is the slice poll and recv drain the messages of an envelope into, reused once
	// its JSON is written (envelopeJSON).
	msgBuf reusable[bus.Message]
	// batch holds the messages of the Publish frame being published (publish), reused from frame
	// to frame: the call connection hands over one frame at a time, and the bus keeps no
	// reference to the slice (it copies each message into the queues).
	batch []bus.Message
}

// logLines writes the lines of one Log frame to the capsule's logger, in order, escaped and
// rate-limited (guestLog).
func (s *hostServices) logLines(req *pb.LogRequest) {
	g := s.inst.guestLog()
	for _, e := range req.Entries {
		level := hclog.Level(e.Level) + hclog.Trace
		if level < hclog.Trace || level > hclog.Error {
			level = hclog.Info
		}
		g.line(level, e.Source, e.Message)
	}
}
