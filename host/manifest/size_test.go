package manifest

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  string // a part of the error, "" for success
	}{
		{"1024", 1024, ""},
		{"0", 0, ""},
		{"64MiB", 64 << 20, ""},
		{"512KiB", 512 << 10, ""},
		{"1GiB", 1 << 30, ""},
		{"100MB", 100_000_000, ""},
		{"3KB", 3000, ""},
		{"2GB", 2_000_000_000, ""},
		{"7B", 7, ""},
		{" 64 MiB ", 64 << 20, ""},
		{"64mib", 64 << 20, ""},
		{"18446744073709551615", 1<<64 - 1, ""},
		{"", 0, `invalid size "": want digits`},
		{"MiB", 0, `invalid size "MiB": want digits`},
		{"-1", 0, `invalid size "-1"`},
		{"1.5GiB", 0, `unknown unit ".5GiB"`},
		{"64XB", 0, `unknown unit "XB"`},
		{"64 M", 0, `unknown unit "M"`},
		{"18446744073709551616", 0, "too large"},
		{"17179869184GiB", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 bytes", 1000: "1000 bytes", 2048: "2KiB", 64 << 20: "64MiB", 5 << 30: "5GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
