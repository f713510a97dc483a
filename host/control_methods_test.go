package host

import (
	"strings"
	"testing"
)

// TestOperatorChecks: the rules of what the operator publishes, follows and calls through the
// control socket, each refusal naming what is wrong.
func TestOperatorChecks(t *testing.T) {
	big := strings.Repeat("x", MaxOperatorPayloadBytes)
	tests := []struct {
		name string
		err  error
		want string // "" for no error
	}{
		{"publish", CheckOperatorPublish("a.b.c.d.e.f.g.h.i", []byte(`{"n":1}`)), ""},
		{"publish at the limit", CheckOperatorPublish("a.b", []byte(`"`+big[2:]+`"`)), ""},
		{"publish over the limit", CheckOperatorPublish("a.b", []byte(`"`+big[1:]+`"`)), "payload of 524289 bytes: the operator publishes at most 524288 bytes (512 KiB)"},
		{"publish empty topic", CheckOperatorPublish("", []byte(`1`)), `topic "" contains empty segments`},
		{"publish trailing dot", CheckOperatorPublish("a.", []byte(`1`)), `topic "a." contains empty segments`},
		{"publish topic not UTF-8", CheckOperatorPublish("a.\xff", []byte(`1`)), `topic "a.\xff" is not valid UTF-8`},
		{"publish topic too long", CheckOperatorPublish(strings.Repeat("a", 257), []byte(`1`)), "is 257 bytes long; topics are limited to 256 bytes"},
		{"publish not JSON", CheckOperatorPublish("a.b", []byte(`{`)), `payload "{": IPC payload is not valid JSON`},
		{"publish two values", CheckOperatorPublish("a.b", []byte(`1 2`)), `IPC payload is not valid JSON`},
		{"publish lone surrogate", CheckOperatorPublish("a.b", []byte(`"\ud800"`)), `IPC payload is not valid JSON`},
		{"tail", CheckTailPatterns([]string{"a.*", "*.*", "x"}), ""},
		{"tail none", CheckTailPatterns(nil), "want 1 to 16 patterns, got 0"},
		{"tail too many", CheckTailPatterns(make([]string, 17)), "want 1 to 16 patterns, got 17"},
		{"tail bad pattern", CheckTailPatterns([]string{"a", "a..*"}), `pattern "a..*" contains empty segments`},
		{"call", CheckCallParams(CallParams{Capsule: "c", Export: "e", Input: []byte(big)}), ""},
		{"call no capsule", CheckCallParams(CallParams{Export: "e"}), "no capsule named"},
		{"call no export", CheckCallParams(CallParams{Capsule: "c"}), "export name of 0 bytes: want 1 to 1024"},
		{"call long export", CheckCallParams(CallParams{Capsule: "c", Export: big[:1025]}), "export name of 1025 bytes: want 1 to 1024"},
		{"call input too large", CheckCallParams(CallParams{Capsule: "c", Export: "e", Input: []byte(big + "y")}), "input of 524289 bytes: a call into a running capsule takes at most 524288 bytes (512 KiB)"},
		{"call negative timeout", CheckCallParams(CallParams{Capsule: "c", Export: "e", TimeoutMs: -1}), "timeout of -1 ms: must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.want == "" && tc.err != nil:
				t.Fatalf("refused: %v", tc.err)
			case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", tc.err, tc.want)
			}
		})
	}
}
