package main

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/metrics"
)

// metricsCloseTimeout bounds how long stopping the metrics endpoint waits for scrapes in
// progress.
const metricsCloseTimeout = 2 * time.Second

// serveMetrics serves the host's Prometheus metrics, with the Go runtime's and the process's, on
// addr (run --metrics) until the returned function is called. An empty addr serves nothing.
func serveMetrics(h *host.Host, addr string, logger hclog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := h.RegisterMetrics(reg); err != nil {
		return nil, err
	}
	srv, err := metrics.Serve(addr, reg, logger.Named("metrics"))
	if err != nil {
		return nil, err
	}
	logger.Info("serving metrics", "addr", srv.Addr().String(), "path", metrics.MetricsPath)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsCloseTimeout)
		defer cancel()
		srv.Close(ctx)
	}, nil
}
