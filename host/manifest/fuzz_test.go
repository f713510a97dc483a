package manifest

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics and keeps its contract: a nil
// error means a usable manifest, an error is a non-empty Errors.
func FuzzParse(f *testing.F) {
	for _, tt := range errorTests {
		if len(tt.doc) <= 4096 { // large seeds only slow the fuzzer down
			f.Add([]byte(tt.doc))
		}
	}
	for _, doc := range []string{base, exampleReact, exampleCLI, exampleAnthropic, exampleShell, exampleAdversarial} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, warns, err := Parse("Capsule.toml", data)
		for _, w := range warns {
			if w.Message == "" {
				t.Errorf("warning without a message: %+v", w)
			}
		}
		if err == nil {
			if m == nil || m.ID() == "" || !validID(m.ID()) {
				t.Fatalf("err == nil but manifest = %+v", m)
			}
			if len(m.Components) == 0 || m.WasmPath() == "" {
				t.Fatalf("err == nil but no component: %+v", m)
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %v (%T) is not a non-empty Errors", err, err)
		}
		if m != nil {
			t.Fatalf("manifest %+v returned with an error", m)
		}
		for _, p := range errs {
			if p.Message == "" {
				t.Errorf("problem without a message: %+v", p)
			}
		}
		_ = errs.Error()
	})
}
