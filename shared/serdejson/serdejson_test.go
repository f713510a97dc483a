package serdejson

import "testing"

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"html characters are kept", map[string]string{"a": "<b>&</b>"}, `{"a":"<b>&</b>"}`},
		{"no trailing newline", []int{1, 2}, `[1,2]`},
		{"control characters are escaped", "a\nb\u0001", `"a\nb\u0001"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Marshal(%v) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	if _, err := Marshal(func() {}); err == nil {
		t.Fatal("Marshal of a func: no error")
	}
}
