package shared

import (
	"strings"
	"testing"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestProcessFuncs: the table has every operation of the protocol once (none unspecified), each
// under a distinct astrid_*_host name, and ProcessFuncOf finds each and nothing else.
func TestProcessFuncs(t *testing.T) {
	names := map[string]bool{}
	ops := map[pb.ProcessOp]bool{}
	for _, f := range ProcessFuncs {
		if !strings.HasPrefix(f.Name, "astrid_") || !strings.HasSuffix(f.Name, "_host") || names[f.Name] {
			t.Errorf("bad or repeated name %q", f.Name)
		}
		if f.Op == pb.ProcessOp_PROCESS_OP_UNSPECIFIED || ops[f.Op] || f.Request == "" {
			t.Errorf("%s: bad or repeated op %v (request %q)", f.Name, f.Op, f.Request)
		}
		names[f.Name], ops[f.Op] = true, true
		if got, ok := ProcessFuncOf(f.Op); !ok || got != f {
			t.Errorf("ProcessFuncOf(%v) = %+v, %v", f.Op, got, ok)
		}
	}
	for v := range pb.ProcessOp_name {
		op := pb.ProcessOp(v)
		if _, ok := ProcessFuncOf(op); ok != (op != pb.ProcessOp_PROCESS_OP_UNSPECIFIED) {
			t.Errorf("ProcessFuncOf(%v) found %v", op, ok)
		}
	}
	if _, ok := ProcessFuncOf(99); ok {
		t.Error("ProcessFuncOf(99) found an entry")
	}
}
