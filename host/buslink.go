package host

import (
	"errors"
	"fmt"

	"github.com/astrid-go/astrid/bus/cluster"
	"github.com/astrid-go/astrid/host/internal/principal"
)

// The bus across hosts (docs/architecture.md#the-bus-across-hosts): JoinBus links the host's bus
// to other hosts' over NATS (package bus/cluster). Guest publishes and subscriptions, and the
// operator's publishes (Host.Publish), are shared; the host's own events and internal
// subscriptions, and interceptors, stay on this host.

// errBusRefused marks what the link to other hosts refused (a publish it could not buffer, a
// subscription past its bounds): an ordinary error for the guest, not a misbehaving shim.
var errBusRefused = errors.New("the bus to other hosts refused it")

// JoinBus connects the host's bus to the NATS server at opts.URL; Shutdown leaves it. Messages
// from other hosts are checked with the host's own rules (principal ids) and delivered only to
// subscriptions this host's matcher matches. It is called once, before capsules load.
func (h *Host) JoinBus(opts cluster.Options) error {
	h.linkMu.Lock()
	defer h.linkMu.Unlock()
	if h.link != nil {
		return errors.New("the host has joined a bus already")
	}
	opts.CheckPrincipal = principal.Check
	if opts.Logger == nil {
		opts.Logger = h.log
	}
	l, err := cluster.Connect(h.bus, opts)
	if err != nil {
		return err
	}
	h.link = l
	return nil
}

// leaveBus closes the link to other hosts, once the instances have stopped.
func (h *Host) leaveBus() {
	h.linkMu.Lock()
	defer h.linkMu.Unlock()
	if h.link != nil {
		h.link.Close()
		h.link = nil
	}
}

// BusRefused is the number of guest and operator publishes the link to other hosts refused.
func (h *Host) BusRefused() uint64 { return h.bus.Refused() }

// busRefusal wraps a link's refusal of what a guest asked for.
func busRefusal(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, errBusRefused, err)
}

// BusSubscribers returns how many patterns other hosts subscribe to match topic, as far as this
// host knows (0 when it has joined no bus): a message on topic is forwarded iff it is not 0.
func (h *Host) BusSubscribers(topic string) int {
	h.linkMu.Lock()
	defer h.linkMu.Unlock()
	if h.link == nil {
		return 0
	}
	return h.link.Subscribers(topic)
}
