package shim

import (
	"strings"
	"testing"
)

func TestVarStore(t *testing.T) {
	s := newVarStore()
	steps := []struct {
		op      string // "set", "del"
		key     string
		size    int
		wantErr string
		bytes   int // accounted size after the step
	}{
		{"set", "a", 10, "", 11},
		{"set", "a", 20, "", 21}, // replacing frees the old value first
		{"set", "b", MaxVarBytes - 21 - 1, "", MaxVarBytes},
		{"set", "c", 1, `setting "c" (1 bytes) would make the capsule's variables 1048578 bytes; the limit is 1048576 bytes (1 MiB)`, MaxVarBytes},
		{"del", "b", 0, "", 21},
		{"set", "c", 1, "", 23},
		{"set", "empty", 0, "", 28}, // an empty value is a value, not a deletion
		{"del", "missing", 0, "", 28},
	}
	for i, st := range steps {
		var err error
		if st.op == "set" {
			err = s.set(st.key, make([]byte, st.size))
		} else {
			err = s.set(st.key, nil)
		}
		if st.wantErr == "" && err != nil || st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)) {
			t.Fatalf("step %d (%s %s): error %v, want %q", i, st.op, st.key, err, st.wantErr)
		}
		if s.bytes != st.bytes {
			t.Fatalf("step %d (%s %s): %d bytes accounted, want %d", i, st.op, st.key, s.bytes, st.bytes)
		}
	}
	if v, ok := s.get("empty"); !ok || len(v) != 0 {
		t.Fatalf("empty value: %v %v", v, ok)
	}
	if _, ok := s.get("b"); ok {
		t.Fatal("deleted variable still set")
	}
}
