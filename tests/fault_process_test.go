package tests

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// processFaults are the faults of a capsule that runs processes: its processes die with it.
func processFaults() []faultCase {
	return []faultCase{
		{name: "capsule with many processes killed", outcome: restarts, reason: "was killed by signal killed",
			victim: func(t *testing.T) (string, host.LoadOptions) {
				return capsuleVariant(t, "procs", fastRestartFaulty), host.LoadOptions{}
			},
			inject: func(t *testing.T, r *faultRun) {
				// Eight background trees (the per-instance maximum), each with a grandchild that
				// left the process group, and one synchronous spawn in progress.
				req, mark := marked(t, "setsid sleep 300 & sleep 300 & wait")
				req["count"] = 8
				mustProc(t, r.victim, "start", req, nil)
				syncReq, syncMark := marked(t, "setsid sleep 300 & sleep 300 & wait")
				in, _ := json.Marshal(syncReq)
				go r.victim.Call(t.Context(), "spawn", in, time.Minute)
				waitFor(t, eventTimeout, "the processes to start", func() bool {
					return len(markedPids(mark, "sleep")) == 16 && len(markedPids(syncMark, "sleep")) == 2
				})
				r.t0 = time.Now()
				if err := syscall.Kill(r.victim.Pid(), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				waitFor(t, eventTimeout, "every process of the killed capsule to be gone", func() bool {
					return len(markedPids(mark))+len(markedPids(syncMark)) == 0
				})
				t.Logf("its 18 processes (and their sandbox helpers) were gone %s after the kill", time.Since(r.t0))
			}},
	}
}
