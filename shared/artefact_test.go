package shared

import (
	"bytes"
	"os"
	"strconv"
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
	t.Setenv(EnvShimArtefactFD, strconv.Itoa(fd))
	a, err := InheritedArtefact(EnvShimArtefactFD)
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
				t.Setenv(EnvShimArtefactFD, tc.value)
			} else {
				os.Unsetenv(EnvShimArtefactFD)
			}
			a, err := InheritedArtefact(EnvShimArtefactFD)
			if (err != nil) != tc.wantErr || (err == nil && a != nil) {
				t.Fatalf("got %v, %v; want error %v and no artefact", a, err, tc.wantErr)
			}
		})
	}
}
