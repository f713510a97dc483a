//go:build wasip1

// Command bridge is an example uplink capsule of the astrid Go SDK: it accepts clients on the
// host's CLI socket and bridges them to the bus, both ways.
//
//   - Each frame a client sends (a line of text) becomes an inbound message of the capsule's
//     uplink "cli": the host publishes it on astrid.v1.uplink.inbound, with platform "cli",
//     platform_user_id the client's name ("cli-1", "cli-2", ...) and the text as content.
//   - Each message on bridge.v1.out goes back as a frame: {"to": "cli-1", "text": "..."} to that
//     client, {"text": "..."} to every client, anything else, as its JSON, to every client.
//
// A client that goes away is closed (the host publishes client.v1.disconnect). The run export is
// the run loop `astrid-host run` starts; `astrid-host connect` is a client.
//
// Build it from the repository root:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/bridge/bridge.wasm ./examples/bridge
package main

import (
	"errors"
	"io"
	"sort"
	"unicode/utf8"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

// main is required by the c-shared build mode and never called.
func main() {}

const outTopic = "bridge.v1.out"

// outMessage is what other capsules publish on bridge.v1.out.
type outMessage struct {
	To   string  `json:"to"`
	Text *string `json:"text"`
}

//go:wasmexport run
func run() int32 { return astrid.Export(bridge) }

// bridge serves clients until the host unloads the capsule.
func bridge([]byte) ([]byte, error) {
	ln := astrid.BindUnix()
	up, err := astrid.RegisterUplink("cli", "cli", "bridge")
	if err != nil {
		return nil, err
	}
	sub, err := astrid.Subscribe(outTopic)
	if err != nil {
		return nil, err
	}
	astrid.SignalReady()
	astrid.Logf(astrid.LogInfo, "bridging CLI socket clients to the bus (uplink %s)", up.ID)
	clients := map[string]*astrid.Conn{}
	for {
		if len(clients) < astrid.MaxNetStreams {
			if c, ok := ln.TryAccept(); ok {
				name := "cli-" + c.Handle()
				clients[name] = c
				astrid.Logf(astrid.LogInfo, "%s connected", name)
			}
		}
		for _, name := range sortedNames(clients) {
			serveFrame(up, name, clients)
		}
		env, err := sub.Poll()
		if err != nil {
			return nil, err
		}
		for _, m := range env.Messages {
			deliver(m, clients)
		}
	}
}

// serveFrame reads one frame of client name, if one came, and hands it to the uplink.
func serveFrame(up astrid.Uplink, name string, clients map[string]*astrid.Conn) {
	c := clients[name]
	b, err := c.TryRecv()
	switch {
	case errors.Is(err, astrid.ErrNoMessage):
		return
	case errors.Is(err, io.EOF):
		c.Close()
		delete(clients, name)
		astrid.Logf(astrid.LogInfo, "%s disconnected", name)
		return
	case err != nil:
		astrid.Logf(astrid.LogWarn, "%s: %v", name, err)
		return
	}
	if !utf8.Valid(b) {
		c.Send([]byte("bridge: a line must be UTF-8 text"))
		return
	}
	queued, err := up.Send(name, string(b))
	switch {
	case err != nil:
		c.Send([]byte("bridge: " + err.Error()))
	case !queued:
		c.Send([]byte("bridge: the bus is busy; the line was dropped"))
	}
}

// deliver sends a bridge.v1.out message to the clients it is for.
func deliver(m astrid.Message, clients map[string]*astrid.Conn) {
	var out outMessage
	frame := m.Data()
	if err := m.Decode(&out); err == nil && out.Text != nil {
		frame = []byte(*out.Text)
	}
	if out.To != "" {
		if c, ok := clients[out.To]; ok {
			c.Send(frame)
		}
		return
	}
	for _, name := range sortedNames(clients) {
		clients[name].Send(frame)
	}
}

// sortedNames is the clients' names in order, so they are served in turn.
func sortedNames(clients map[string]*astrid.Conn) []string {
	names := make([]string, 0, len(clients))
	for n := range clients {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
