package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/bus/cluster"
	"github.com/astrid-go/astrid/host"
)

// busFlags are run's flags for the bus across hosts (docs/architecture.md#the-bus-across-hosts).
type busFlags struct {
	url, listen            string
	creds                  string
	tlsCA, tlsCert, tlsKey string
	reconnectBuf           int
}

func (f *busFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "bus", "", "join the bus of other hosts on the NATS server at `URL` (nats://[USER:PASSWORD@]HOST:4222, tls://... for TLS; a comma-separated list for a cluster); without --bus or --bus-listen the bus is this host's alone")
	fs.StringVar(&f.listen, "bus-listen", "", "run a NATS server on `[USER:PASSWORD@]HOST:PORT` inside this host and join it; other hosts join with --bus nats://[USER:PASSWORD@]THIS-HOST:PORT")
	fs.StringVar(&f.creds, "bus-creds", "", "NATS credentials `FILE` (JWT and NKey seed) for --bus")
	fs.StringVar(&f.tlsCA, "bus-tls-ca", "", "PEM `FILE` of the CA that signed the NATS server's certificate")
	fs.StringVar(&f.tlsCert, "bus-tls-cert", "", "PEM `FILE` of this host's TLS certificate: the client certificate for --bus, the server's for --bus-listen")
	fs.StringVar(&f.tlsKey, "bus-tls-key", "", "PEM `FILE` of the key of --bus-tls-cert")
	fs.IntVar(&f.reconnectBuf, "bus-reconnect-buffer", cluster.DefaultReconnectBufBytes, "`BYTES` of publishes kept while the NATS server is unreachable; past them publishes are refused to the capsule")
}

// check reports flag combinations that cannot work.
func (f *busFlags) check() error {
	switch {
	case f.url != "" && f.listen != "":
		return errors.New("--bus and --bus-listen: give one (a host that runs the server joins it itself)")
	case f.url == "" && f.listen == "" && (f.creds != "" || f.tlsCA != "" || f.tlsCert != "" || f.tlsKey != ""):
		return errors.New("--bus-creds and --bus-tls-* need --bus or --bus-listen")
	case f.reconnectBuf <= 0:
		return fmt.Errorf("--bus-reconnect-buffer %d: want a positive number of bytes", f.reconnectBuf)
	}
	return nil
}

// join starts the embedded server if asked and joins the bus; stop leaves it (after the host's
// Shutdown, which closes the link).
func (f *busFlags) join(h *host.Host, logger hclog.Logger) (stop func(), err error) {
	url := f.url
	stop = func() {}
	if f.listen != "" {
		srv, err := cluster.Listen(cluster.ServerOptions{Addr: f.listen, TLSCert: f.tlsCert, TLSKey: f.tlsKey, Logger: logger.Named("nats")})
		if err != nil {
			return stop, err
		}
		stop = srv.Shutdown
		url = srv.URL()
		logger.Info("bus: NATS server listening; other hosts join with --bus", "addr", srv.Addr().String())
	}
	if url == "" {
		return stop, nil
	}
	name, _ := os.Hostname()
	opts := cluster.Options{URL: url, Name: "astrid-host on " + name, CredsFile: f.creds,
		TLSCA: f.tlsCA, ReconnectBufBytes: f.reconnectBuf}
	if f.listen == "" {
		opts.TLSCert, opts.TLSKey = f.tlsCert, f.tlsKey
	}
	if err := h.JoinBus(opts); err != nil {
		stop()
		return func() {}, err
	}
	return stop, nil
}
