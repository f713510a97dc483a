package shared

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sealedMemfd returns the descriptor of a memfd holding data, sealed as the host seals an
// artefact (no write, no resize).
func sealedMemfd(t *testing.T, data []byte) int {
	t.Helper()
	fd, err := unix.MemfdCreate("test-artefact", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Skipf("memfd_create is not available on this kernel: %v", err)
	}
	if _, err := unix.Write(fd, data); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestInheritedArtefactPath checks that the path an inherited artefact offers (for wasmtime to map
// it) names the very memfd the host sealed: reading it gives the sealed bytes, and opening it
// for writing cannot change them.
func TestInheritedArtefactPath(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skipf("no /proc on this system: %v", err)
	}
	data := bytes.Repeat([]byte("artefact"), 4096)
	fd := sealedMemfd(t, data)
	t.Setenv(EnvShimKernelFD, strconv.Itoa(fd))
	a, err := InheritedArtefact(EnvShimKernelFD)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !bytes.Equal(a.Bytes, data) {
		t.Fatal("the mapped bytes are not the memfd's")
	}
	if a.Path != "/proc/self/fd/"+strconv.Itoa(fd) {
		t.Fatalf("Path is %q; want /proc/self/fd/%d", a.Path, fd)
	}
	got, err := os.ReadFile(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes read through Path are not the sealed memfd's")
	}
	if f, err := os.OpenFile(a.Path, os.O_WRONLY, 0); err == nil {
		_, werr := f.Write([]byte("forged"))
		f.Close()
		if werr == nil {
			t.Fatal("a write through Path reached a sealed artefact")
		}
	}
	a.Close()
	if a.Path != "" || a.Bytes != nil {
		t.Fatal("Close left Path or Bytes set")
	}
}

// TestInheritedArtefactEnv checks the variable's rules: unset is no artefact, anything but an
// inherited descriptor's number is an error naming what is valid.
func TestInheritedArtefactEnv(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		set         bool
		wantErr     bool
	}{
		{name: "unset"},
		{name: "not a number", value: "x", set: true, wantErr: true},
		{name: "stdio", value: "2", set: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.set {
				t.Setenv(EnvShimKernelFD, tc.value)
			} else {
				os.Unsetenv(EnvShimKernelFD)
			}
			a, err := InheritedArtefact(EnvShimKernelFD)
			if (err != nil) != tc.wantErr || (err == nil && a != nil) {
				t.Fatalf("got %v, %v; want error %v and no artefact", a, err, tc.wantErr)
			}
		})
	}
}

// TestReceiveArtefact checks the channel the capsule's artefact travels on: the shim takes a
// sealed memfd and nothing else (a descriptor whose bytes can still change, a message of another
// shape), finds "no artefact" when the host closed the channel unsent, and does not wait for a
// host that has sent nothing yet.
func TestReceiveArtefact(t *testing.T) {
	data := bytes.Repeat([]byte("code"), 1024)
	unsealed := func(t *testing.T) int {
		fd, err := unix.MemfdCreate("test-unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Skipf("memfd_create is not available on this kernel: %v", err)
		}
		if _, err := unix.Write(fd, data); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	regular := func(t *testing.T) int {
		path := t.TempDir() + "/artefact"
		if err := os.WriteFile(path, data, 0o444); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	for _, tc := range []struct {
		name string
		// send writes on the host's end (nil: the host sends nothing) and closes it if close.
		send    func(t *testing.T, host *os.File) error
		close   bool
		want    bool // an artefact arrives
		wantErr string
	}{
		{name: "sealed memfd", close: true, want: true, send: func(t *testing.T, host *os.File) error {
			f := os.NewFile(uintptr(sealedMemfd(t, data)), "sealed")
			defer f.Close()
			return SendArtefact(host, f)
		}},
		{name: "closed unsent", close: true},
		{name: "not sent yet", wantErr: "not sent"},
		{name: "unsealed memfd", close: true, wantErr: "not a sealed memfd", send: func(t *testing.T, host *os.File) error {
			f := os.NewFile(uintptr(unsealed(t)), "unsealed")
			defer f.Close()
			return SendArtefact(host, f)
		}},
		{name: "regular file", close: true, wantErr: "not a sealed memfd", send: func(t *testing.T, host *os.File) error {
			f := os.NewFile(uintptr(regular(t)), "regular")
			defer f.Close()
			return SendArtefact(host, f)
		}},
		{name: "two descriptors", close: true, wantErr: "want 1 byte and 1 descriptor", send: func(t *testing.T, host *os.File) error {
			a, b := sealedMemfd(t, data), sealedMemfd(t, data)
			defer unix.Close(a)
			defer unix.Close(b)
			return unix.Sendmsg(int(host.Fd()), []byte{1}, unix.UnixRights(a, b), nil, 0)
		}},
		{name: "bytes without a descriptor", close: true, wantErr: "want 1 byte and 1 descriptor", send: func(t *testing.T, host *os.File) error {
			return unix.Sendmsg(int(host.Fd()), []byte{1}, nil, nil, 0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, shim, err := ArtefactSocket()
			if err != nil {
				t.Fatal(err)
			}
			defer shim.Close()
			defer host.Close()
			if tc.send != nil {
				if err := tc.send(t, host); err != nil {
					t.Fatal(err)
				}
			}
			if tc.close {
				host.Close()
			}
			a, err := ReceiveArtefact(shim)
			defer a.Close()
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v; want an error saying %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case (a != nil) != tc.want:
				t.Fatalf("artefact received: %v; want %v", a != nil, tc.want)
			case a != nil && !bytes.Equal(a.Bytes, data):
				t.Fatal("the received artefact's bytes are not the ones sent")
			}
		})
	}
}
