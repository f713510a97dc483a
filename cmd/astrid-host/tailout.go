package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/shared/logtext"
)

// tailPrinter prints bus messages as JSON lines, one whole line at a time, as `run --tail` and
// `astrid-host tail` show them: each message's JSON (bus.Message's, upstream's IpcMessage form)
// with what a terminal would act on escaped, so a guest's payload cannot pass for anything else.
type tailPrinter struct {
	mu  sync.Mutex
	out io.Writer
}

// line prints one message given as its JSON.
func (p *tailPrinter) line(raw []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "%s\n", logtext.EscapeJSON(raw))
}

// message prints m.
func (p *tailPrinter) message(m bus.Message) {
	if raw, err := json.Marshal(m); err == nil {
		p.line(raw)
	}
}
