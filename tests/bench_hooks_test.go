package tests

import (
	"context"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// BenchmarkInterceptorDispatch: a capsule without a run export whose interceptor matches the
// topic. Latency: from the publish to astrid_hook_trigger being entered (the guest stamps the
// time it entered and publishes it), against the same export called directly (Call, from the
// call to the export being entered); one of each per iteration, so both see the same machine.
// Throughput: b.N messages through the one-capsule chain (at most 200 ahead of the interceptor,
// within its queue of 256) against b.N direct calls of the same export with the same input, each
// timed until the last one's stamp is published. Reports p50/p99 of both latencies, both rates,
// and the ratios (dispatch over call; 1 would be no cost over a direct call).
func BenchmarkInterceptorDispatch(b *testing.B) {
	const window = 200
	h := benchHost(b)
	rec := newRecorder(b, h)
	inst := benchLoad(b, h, hookCapsule(b, "bench", []interceptorDef{{"test.v1.bench.*", "stamp", 0}}, ""))
	input := []byte(`{"name":"stamp","arguments":[123,125]}`) // what a {} payload gives the guest
	idle := []byte(`{"name":"","arguments":[]}`)              // does nothing
	ctx := context.Background()
	call := func() {
		if _, err := inst.Call(ctx, host.HookExport, input, 0); err != nil {
			b.Fatal(err)
		}
	}

	dispatch := make([]int64, 0, b.N)
	direct := make([]int64, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now().UnixNano()
		publish(b, h, "test.v1.bench.x", `{}`, host.DefaultPrincipal)
		dispatch = append(dispatch, rec.next(b, time.Minute).T-t0)
		// The invocation publishes its stamp before it returns: wait for its end (a call with
		// no directive waits for the call slot), so the direct call starts on an idle capsule.
		if _, err := inst.Call(ctx, host.HookExport, idle, 0); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now().UnixNano()
		call()
		direct = append(direct, rec.next(b, time.Minute).T-t0)
	}

	start := time.Now()
	published, received := 0, 0
	for received < b.N {
		for published < b.N && published-received < window {
			published++
			publish(b, h, "test.v1.bench.x", `{}`, host.DefaultPrincipal)
		}
		rec.next(b, time.Minute)
		received++
	}
	dispatchTime := time.Since(start)
	start = time.Now()
	for range b.N {
		call()
		rec.next(b, time.Minute)
	}
	callTime := time.Since(start)
	b.StopTimer()
	if st := inst.InterceptorStats(); st.Failed != 0 || st.Dropped != 0 {
		b.Fatalf("interceptor stats %+v", st)
	}

	d50, d99 := percentiles(dispatch)
	c50, c99 := percentiles(direct)
	n := float64(b.N)
	b.ReportMetric(d50/1e3, "dispatch-p50-µs")
	b.ReportMetric(d99/1e3, "dispatch-p99-µs")
	b.ReportMetric(c50/1e3, "call-p50-µs")
	b.ReportMetric(c99/1e3, "call-p99-µs")
	b.ReportMetric(d50/c50, "ratio-p50")
	b.ReportMetric(d99/c99, "ratio-p99")
	b.ReportMetric(n/dispatchTime.Seconds(), "dispatch-msgs/s")
	b.ReportMetric(n/callTime.Seconds(), "call-calls/s")
	b.ReportMetric(float64(dispatchTime)/float64(callTime), "ratio-throughput")
}
