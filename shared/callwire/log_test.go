package callwire

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestLogFrames: the lines of Log frames reach HandleLogs in the order sent, and before the
// result of the call that logged them.
func TestLogFrames(t *testing.T) {
	var mu sync.Mutex
	var got []string
	e := newEndpoints(t, nil, func(s *ShimEnd, req *pb.InvokeRequest) *pb.InvokeResponse {
		for batch := range 3 {
			var lines []*pb.LogEntry
			for i := range 2 {
				lines = append(lines, &pb.LogEntry{Level: pb.LogEntry_INFO, Source: "log", Message: fmt.Sprintf("%s %d.%d", req.Input, batch, i)})
			}
			if err := s.SendLog(&pb.LogRequest{Entries: lines}); err != nil {
				return &pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}}
			}
		}
		return &pb.InvokeResponse{Output: req.Input}
	}, func(e *endpoints) {
		e.host.HandleLogs(func(req *pb.LogRequest) {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range req.Entries {
				got = append(got, l.Message)
			}
		})
	})
	for call := range 2 {
		in := fmt.Sprintf("call%d", call)
		resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "x", Input: []byte(in)})
		if err != nil || resp.Error != nil {
			t.Fatalf("call %d: %v, %v", call, resp, err)
		}
		var want []string
		for c := range call + 1 {
			for batch := range 3 {
				for i := range 2 {
					want = append(want, fmt.Sprintf("call%d %d.%d", c, batch, i))
				}
			}
		}
		mu.Lock()
		lines := slices.Clone(got)
		mu.Unlock()
		if !slices.Equal(lines, want) {
			t.Fatalf("after call %d the host had the lines %q, want %q", call, lines, want)
		}
	}
	if len(e.violations) != 0 {
		t.Fatal(e.violations)
	}
}

// TestLogFramesRefused: Log frames a correct shim never sends end the connection, naming what
// was wrong; one at the limit is taken.
func TestLogFramesRefused(t *testing.T) {
	lines := func(n int) *pb.LogRequest {
		req := &pb.LogRequest{}
		for range n {
			req.Entries = append(req.Entries, &pb.LogEntry{})
		}
		return req
	}
	tests := []struct {
		name   string
		handle bool // the host takes log lines
		send   func(c *Conn) error
		want   string // "" means taken
	}{
		{"at the limit", true, func(c *Conn) error { return c.WriteFrame(Log, 0, lines(MaxLogBatch)) }, ""},
		{"one line past the limit", true, func(c *Conn) error { return c.WriteFrame(Log, 0, lines(MaxLogBatch+1)) }, "more than 256 lines"},
		{"malformed", true, func(c *Conn) error {
			_, err := c.out.Write(append(header(3, Log, 0), 0x0a, 0x05, 0x0a))
			return err
		}, "decode a log frame"},
		{"not taken on this connection", false, func(c *Conn) error { return c.WriteFrame(Log, 0, lines(1)) }, "a log frame, but this connection takes no log lines"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			taken := make(chan int, 1)
			e := newEndpoints(t, nil, func(*ShimEnd, *pb.InvokeRequest) *pb.InvokeResponse { return &pb.InvokeResponse{} }, func(e *endpoints) {
				if tc.handle {
					e.host.HandleLogs(func(req *pb.LogRequest) { taken <- len(req.Entries) })
				}
			})
			if err := tc.send(e.raw); err != nil {
				t.Fatal(err)
			}
			if tc.want != "" {
				e.expectRefused(t, tc.want)
				return
			}
			if n := <-taken; n != MaxLogBatch {
				t.Fatalf("the host took %d lines, want %d", n, MaxLogBatch)
			}
		})
	}
}
