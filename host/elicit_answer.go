package host

import (
	"context"
	"errors"
	"sync"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/elicit"
)

// ElicitAnswerer answers one elicit request: the value (text, secret, select), or the values of
// an array; both nil cancels the request (the guest's astrid_elicit traps at once).
type ElicitAnswerer func(e elicit.Event) (value *string, values []string)

// AnswerElicit answers the elicit requests of h's capsules with answer until the returned stop is
// called (stop waits for the answerer to finish): what `astrid-host install` does while a
// lifecycle hook runs. Only the requests the host itself published (source id nil) are answered:
// a capsule that publishes on astrid.v1.elicit cannot make the operator answer it.
func (h *Host) AnswerElicit(answer ElicitAnswerer) (stop func()) {
	sub := h.bus.Subscribe(elicit.TopicRequest)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			env, err := sub.Recv(ctx, elicit.MaxResponseBytes)
			if errors.Is(err, context.Canceled) || errors.Is(err, bus.ErrClosed) {
				return
			}
			for _, m := range env.Messages {
				if m.SourceID != hostSourceID {
					continue
				}
				e, id, err := elicit.ParseEvent(m.Payload)
				if err != nil {
					h.log.Warn("ignoring a malformed elicit request", "error", err)
					continue
				}
				value, values := answer(e)
				h.publishElicitAnswer(id, value, values)
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		sub.Close()
	}
}

func (h *Host) publishElicitAnswer(id uuid.UUID, value *string, values []string) {
	payload, err := elicit.ResponsePayload(id, value, values)
	if err != nil {
		h.log.Error("cannot encode an elicit response", "error", err)
		return
	}
	h.bus.Publish(bus.Message{Topic: elicit.ResponseTopic(id), Payload: payload, SourceID: hostSourceID})
}
