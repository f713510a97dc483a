package manifest

import (
	"strings"
	"testing"
)

// TestInterceptorWholeBusWarning: an [[interceptor]] is subscribed without the ipc_subscribe check
// (as upstream), so one whose event spans every namespace ("*") hands the capsule the whole bus;
// check warns about it unless ipc_subscribe grants the same.
func TestInterceptorWholeBusWarning(t *testing.T) {
	tests := []struct {
		name      string
		event     string
		subscribe string // ipc_subscribe entries, TOML array body
		warn      bool
	}{
		{"whole bus", "*", "", true},
		{"every namespace's v1", "*.v1.*", `"user.v1.*"`, true},
		{"two wildcards", "*.*", "", true},
		{"granted by ipc_subscribe", "*", `"*"`, false},
		{"one namespace", "user.v1.*", "", false},
		{"one topic", "user.v1.prompt", "", false},
		{"wildcard after the namespace", "user.*", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := base + "[capabilities]\nipc_subscribe = [" + tc.subscribe + "]\n[[interceptor]]\nevent = \"" + tc.event + "\"\naction = \"h\"\n"
			m, warns := mustParse(t, doc)
			if len(m.Interceptors) != 1 || m.Interceptors[0].Event != tc.event {
				t.Fatalf("interceptors %+v", m.Interceptors)
			}
			var got []Problem
			for _, w := range warns {
				if w.Key == "interceptor[0].event" {
					got = append(got, w)
				}
			}
			if !tc.warn {
				if len(got) != 0 {
					t.Fatalf("warnings %v; want none", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0].Message, `interceptor event "`+tc.event+`" matches topics of every namespace`) ||
				!strings.Contains(got[0].Message, "ipc_subscribe does not grant it") {
				t.Fatalf("warnings %v; want one about the whole bus", got)
			}
		})
	}
}
