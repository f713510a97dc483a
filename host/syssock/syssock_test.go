package syssock

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int
		want  string
		err   error
	}{
		{"empty", []byte{0, 0, 0, 0}, 10, "", nil},
		{"data", []byte{0, 0, 0, 3, 'a', 'b', 'c'}, 10, "abc", nil},
		{"over the limit", []byte{0, 0, 0, 11}, 10, "", ErrFrameTooLarge},
		{"huge length, nothing allocated", []byte{0xff, 0xff, 0xff, 0xff}, MaxFrameBytes, "", ErrFrameTooLarge},
		{"short body", []byte{0, 0, 0, 3, 'a'}, 10, "", io.ErrUnexpectedEOF},
		{"nothing", nil, 10, "", io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ReadFrame(bytes.NewReader(tc.in), tc.limit)
			if !errors.Is(err, tc.err) || string(b) != tc.want {
				t.Fatalf("ReadFrame = %q, %v; want %q, %v", b, err, tc.want, tc.err)
			}
		})
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("hi")); err != nil || buf.String() != "\x00\x00\x00\x02hi" {
		t.Fatalf("WriteFrame: %q, %v", buf.String(), err)
	}
	if err := WriteFrame(&buf, make([]byte, MaxFrameBytes+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("WriteFrame of 10 MiB + 1: %v", err)
	}
}

func TestParseHandshakeRequest(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{`{"token":"ab","protocol_version":1,"client_version":"x"}`, ""},
		{`{"token":"ab","protocol_version":256,"client_version":"x"}`, "protocol_version"},
		{`{"token":"ab","protocol_version":-1,"client_version":"x"}`, "protocol_version"},
		{`{"protocol_version":1,"client_version":"x"}`, "missing field `token`"},
		{`{"token":"ab","client_version":"x"}`, "missing field `protocol_version`"},
		{`{"token":"ab","protocol_version":1}`, "missing field `client_version`"},
		{`{"token":1,"protocol_version":1,"client_version":"x"}`, "cannot unmarshal"},
		{`{"token":"ab","protocol_version":1,"client_version":"x"} {}`, "trailing characters"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := parseHandshakeRequest([]byte(tc.in))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("got %v, want %q", err, tc.err)
			}
		})
	}
}

func TestTokenMatches(t *testing.T) {
	want := bytes.Repeat([]byte{0xab}, 32)
	for _, tc := range []struct {
		tok string
		ok  bool
	}{
		{strings.Repeat("ab", 32), true},
		{strings.Repeat("AB", 32), true},
		{strings.Repeat("ab", 31) + "ac", false},
		{strings.Repeat("ab", 31), false},
		{strings.Repeat("zz", 32), false},
		{"", false},
	} {
		if got := tokenMatches(tc.tok, want); got != tc.ok {
			t.Errorf("tokenMatches(%q) = %v", tc.tok, got)
		}
	}
}

// TestListenDialClose: the files, the lock, a handshake over the real socket, Close removing
// the socket and the token, and no goroutine left.
func TestListenDialClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	state, err := os.MkdirTemp("", "ss")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	s, err := Listen(state, "9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(state, "9.9.9"); err == nil || !strings.Contains(err.Error(), "another astrid-host holds the CLI socket") {
		t.Fatalf("second Listen: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := s.Next(ctx, nil, 0)
		if err == nil {
			_, err = s.Authenticate(ctx, nil, c)
			c.Close()
		}
		done <- err
	}()
	c, err := Dial(ctx, state, "1.0")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("server side: %v", err)
	}
	// Next with a wait and nobody connecting.
	if _, err := s.Next(ctx, nil, time.Millisecond); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("Next: %v", err)
	}
	// A handshake that never comes ends when stop closes.
	raw, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := s.Next(ctx, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	close(stop)
	if _, err := s.Authenticate(ctx, stop, conn); !errors.Is(err, ErrStopped) {
		t.Fatalf("Authenticate after stop: %v", err)
	}
	s.Close()
	for _, p := range []string{SocketPath(state), TokenPath(state)} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Close: %v", p, err)
		}
	}
	if _, err := Dial(ctx, state, "1.0"); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
}

func TestListenRefusals(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if _, err := Listen(long, "1"); err == nil || !strings.Contains(err.Error(), "over the platform limit of 107 bytes") {
		t.Fatalf("long path: %v", err)
	}
	state := t.TempDir()
	if err := os.Symlink(t.TempDir(), RunDir(state)); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(state, "1"); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Fatalf("symlinked run dir: %v", err)
	}
	if _, err := Listen("", "1"); err == nil {
		t.Fatal("empty state dir accepted")
	}
}
