package shim

import (
	"testing"
	"unsafe"
)

// TestTopicName: a publish's topic is the guest's bytes as a string of its own, the previous one
// reused when the bytes are the same, and the bytes changing afterwards does not change it.
func TestTopicName(t *testing.T) {
	var s ipcState
	b := []byte("a.v1.x")
	first := s.topicName(b)
	if again := s.topicName([]byte("a.v1.x")); again != "a.v1.x" || unsafe.StringData(again) != unsafe.StringData(first) {
		t.Fatalf("the same topic again = %q, a new string", again)
	}
	b[0] = 'b' // the guest's memory changes: the strings handed out do not
	if first != "a.v1.x" {
		t.Fatalf("topic = %q after the guest's bytes changed", first)
	}
	for _, topic := range []string{"b.v1.x", "", "a.v1.x"} {
		if got := s.topicName([]byte(topic)); got != topic {
			t.Fatalf("topicName(%q) = %q", topic, got)
		}
	}
}
