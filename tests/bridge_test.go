package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// TestBridgeExample drives examples/bridge with `astrid-host connect`: a line the client sends
// comes out on the bus as the uplink's inbound message, a message published on bridge.v1.out
// comes back to the client as a line, and the end of the client's input ends the connection
// (the bridge closes it: client.v1.disconnect).
func TestBridgeExample(t *testing.T) {
	state := shortStateDir(t)
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	w := watchBus(t, h, "*.v1.*")
	bridge, _ := loadCapsule(t, h, "bridge", host.LoadOptions{RunLoop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bridge.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, hostBin, "connect", "--state", state)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "hello bridge\n"); err != nil {
		t.Fatal(err)
	}
	var in host.InboundMessageJSON
	if err := json.Unmarshal(w.next(host.TopicUplinkInbound), &in); err != nil {
		t.Fatal(err)
	}
	if in.Content != "hello bridge" || in.Platform != "cli" || in.PlatformUserID != "cli-1" || in.CapsuleID != "bridge" {
		t.Fatalf("inbound message %+v", in)
	}
	if m := w.nextMsg("client.v1.connected"); m.SourceID != bridge.Status().Instance {
		t.Fatalf("connected event from %s", m.SourceID)
	}

	publishJSON(t, h, "bridge.v1.out", map[string]string{"to": "cli-1", "text": "hi back\x1b[2J"})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != `hi back\x1b[2J`+"\n" {
		t.Fatalf("client printed %q, %v; want the text, escaped", line, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("connect: %v", err)
	}
	w.nextMsg("client.v1.disconnect")
}
