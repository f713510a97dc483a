package tests

import (
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The physical baseline of the call path: a ping-pong of 64 bytes between two Go processes over a
// unix socket (this test binary and a copy of it started as the peer), the round trip every
// host↔shim exchange needs at least once. The benchmarks of the call path report their ratio to
// it, measured in the same run, alternating with what they measure in blocks of round trips back
// to back (see BenchmarkExportCall for why).

// echoPeerEnv, when set, makes the test binary the echo peer: it answers every read on descriptor
// 3 with the same bytes until the socket closes.
const echoPeerEnv = "ASTRID_TESTS_ECHO_PEER"

// echoPeerMain is the peer's main.
func echoPeerMain() int {
	f := os.NewFile(3, "echo socket")
	c, err := net.FileConn(f)
	if err != nil {
		return 1
	}
	f.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return 0
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return 0
		}
	}
}

// echoPeer is the other end of the baseline's socket.
type echoPeer struct {
	c        net.Conn
	out, in  []byte
	cmd      *exec.Cmd
	b        testing.TB
	measured time.Duration
}

// startEchoPeer starts the peer process; it ends when the benchmark does.
func startEchoPeer(b testing.TB) *echoPeer {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "echo (test)"), os.NewFile(uintptr(fds[1]), "echo (peer)")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), echoPeerEnv+"=1")
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	theirs.Close()
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		b.Fatal(err)
	}
	p := &echoPeer{c: c, out: make([]byte, 64), in: make([]byte, 64), cmd: cmd, b: b}
	b.Cleanup(func() {
		c.Close()
		cmd.Wait()
	})
	p.roundTrip() // the peer is up
	return p
}

// roundTrip sends 64 bytes and reads them back, and returns how long that took.
func (p *echoPeer) roundTrip() time.Duration {
	t0 := time.Now()
	if _, err := p.c.Write(p.out); err != nil {
		p.b.Fatal(err)
	}
	if _, err := io.ReadFull(p.c, p.in); err != nil {
		p.b.Fatal(err)
	}
	return time.Since(t0)
}

// BenchmarkSocketRTT: the baseline alone (the call-path benchmarks measure it again alongside).
func BenchmarkSocketRTT(b *testing.B) {
	p := startEchoPeer(b)
	var total time.Duration
	for b.Loop() {
		total += p.roundTrip()
	}
	b.ReportMetric(float64(total)/float64(b.N)/1e3, "socket-rtt-µs")
}
