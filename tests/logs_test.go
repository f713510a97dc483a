package tests

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// logBuffer is the host's log output, kept for the test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hostWithLog starts a host whose log (at level) goes to the returned buffer.
func hostWithLog(t *testing.T, level hclog.Level) (*host.Host, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	h := newHost(t, func(c *host.Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "test-host", Output: logs, Level: level})
		c.LogLevel = level
	})
	return h, logs
}

// forged is a guest's attempt to forge a host log line and colour the terminal.
const forged = "hello\n[ERROR] astrid-host: forged\x1b[31m red \x9b2J\u202e"

// TestLogInjection: what a real guest writes (log_info, stdout, stderr, its error message) with a
// newline and terminal controls reaches the host's log and the CLI's output escaped: no line of
// the output starts with the forged "[ERROR]", and no control byte gets through.
func TestLogInjection(t *testing.T) {
	checkLeaks(t)
	h, logs := hostWithLog(t, hclog.Info)
	inst, _ := loadCapsule(t, h, "faulty")
	ctx := context.Background()
	for _, export := range []string{"log", "stderr", "fail"} {
		t.Run(export, func(t *testing.T) {
			before := len(logs.String())
			_, err := inst.Call(ctx, export, []byte(forged), 0)
			var ge *host.GuestError
			if export == "fail" {
				if !errors.As(err, &ge) {
					t.Fatalf("fail: %v; want a guest error", err)
				}
				checkEscaped(t, "the guest error", ge.Error())
			} else if err != nil {
				t.Fatal(err)
			}
			if export == "fail" {
				return // the host does not log a guest's error return; the CLI test prints it
			}
			inst.Stop(ctx) // flush everything the guest logged
			out := logs.String()[before:]
			checkEscaped(t, "the host log", out)
			// log_info's message is one line; stdout and stderr are split into lines, as written.
			want := `test-host.faulty: hello\n[ERROR] astrid-host: forged\x1b[31m red \x9b2J\u202e: source=log`
			if export == "stderr" {
				want = `test-host.faulty: [ERROR] astrid-host: forged\x1b[31m red \x9b2J\u202e: source=stderr`
			}
			if !strings.Contains(out, want) {
				t.Errorf("the host log lacks %q:\n%s", want, out)
			}
			inst, _ = loadCapsule(t, h, "faulty")
		})
	}
	t.Run("call CLI", func(t *testing.T) {
		res := runCLI(t, t.TempDir(), "call", "--sandbox", "best-effort", "--log-level", "info", "--input", forged, capsules["faulty"], "fail")
		if res.code != 1 {
			t.Fatalf("exit %d; stderr:\n%s", res.code, res.stderr)
		}
		checkEscaped(t, "call's stderr", res.stderr)
		if !strings.Contains(res.stderr, `error: hello\n[ERROR] astrid-host: forged\x1b[31m`) {
			t.Errorf("call's stderr lacks the escaped error:\n%s", res.stderr)
		}
	})
}

// checkEscaped fails when text holds a line that starts with the forged "[ERROR]", or a byte a
// terminal acts on.
func checkEscaped(t *testing.T, what, text string) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "[ERROR] astrid-host: forged") {
			t.Errorf("%s holds a forged line %q:\n%s", what, line, text)
		}
	}
	for _, bad := range []string{"\x1b", "\x9b", "\u009b", "\u202e", "\r"} {
		if strings.Contains(text, bad) {
			t.Errorf("%s holds the control %q:\n%q", what, bad, text)
		}
	}
}

// TestLogRateLimit: a guest that logs 20 000 lines in one call gets at most the per-instance rate
// (host.LogLinesPerSecond, a second's burst) into the host's log, and the rest is counted, exactly,
// in the suppressed note(s).
func TestLogRateLimit(t *testing.T) {
	checkLeaks(t)
	h, logs := hostWithLog(t, hclog.Info)
	inst, _ := loadCapsule(t, h, "faulty")
	const total = 20000
	start := time.Now()
	if _, err := inst.Call(context.Background(), "flood", []byte(strconv.Itoa(total)), 0); err != nil {
		t.Fatal(err)
	}
	inst.Stop(context.Background()) // writes the pending note
	elapsed := time.Since(start)
	out := logs.String()
	shown := strings.Count(out, "flood line ")
	suppressed := 0
	for _, m := range regexp.MustCompile(`(\d+) log lines \(\d+ bytes\) suppressed`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		suppressed += n
	}
	t.Logf("%d lines shown, %d suppressed, in %s", shown, suppressed, elapsed)
	if bound := host.LogLinesPerSecond * (1 + elapsed.Seconds()); float64(shown) > bound {
		t.Errorf("%d lines reached the log in %s; the limit allows at most %.0f", shown, elapsed, bound)
	}
	if shown < host.LogLinesPerSecond/2 {
		t.Errorf("only %d lines reached the log; the first second's burst allows %d", shown, host.LogLinesPerSecond)
	}
	if shown+suppressed != total {
		t.Errorf("%d shown + %d suppressed = %d; want all %d lines accounted for", shown, suppressed, shown+suppressed, total)
	}
	if notes := strings.Count(out, "suppressed: the capsule logged more than"); notes < 1 || float64(notes) > 2+elapsed.Seconds() {
		t.Errorf("%d suppressed notes in %s; want one, and at most one a second", notes, elapsed)
	}
}

// TestGuestStderrBlock: a Go guest's crash report (its panic and goroutine dump on stderr) is one
// block under the trap's log line, and under the CLI's error, not one log line per line.
func TestGuestStderrBlock(t *testing.T) {
	checkLeaks(t)
	h, logs := hostWithLog(t, hclog.Info)
	inst, _ := loadCapsule(t, h, "faulty")
	_, err := inst.Call(context.Background(), "panic", nil, 0)
	var ge *host.GuestError
	if !errors.As(err, &ge) {
		t.Fatalf("panic: %v; want a guest error", err)
	}
	if !strings.HasPrefix(ge.Stderr, "panic: faulty: deliberate panic") || !strings.Contains(ge.Stderr, "\ngoroutine ") {
		t.Fatalf("GuestError.Stderr = %q; want the crash report", ge.Stderr)
	}
	lines := strings.Count(ge.Stderr, "\n") + 1
	inst.Stop(context.Background())
	out := logs.String()
	if n := strings.Count(out, "source=stderr"); n != 0 {
		t.Errorf("%d stderr lines were logged on their own; want them all in the trap's block:\n%s", n, out)
	}
	// hclog writes a multi-line value as "  stderr=" and then one "  | line" per line.
	trap := regexp.MustCompile(`(?m)^.*guest trapped; its Store was replaced: .*\n  stderr=\n((?:  \| .*\n)+)`).FindStringSubmatch(out)
	if trap == nil {
		t.Fatalf("no trap line with a stderr block in the log:\n%s", out)
	}
	if got := strings.Count(trap[1], "\n"); got != lines || !strings.Contains(trap[1], "  | panic: faulty: deliberate panic\n") {
		t.Errorf("the block under the trap has %d lines, want the %d of the crash report:\n%s", got, lines, trap[1])
	}

	res := runCLI(t, t.TempDir(), "call", "--sandbox", "best-effort", "--log-level", "off", capsules["faulty"], "panic")
	if res.code != 1 || !strings.Contains(res.stderr, "error: call to panic panicked: faulty: deliberate panic\n") ||
		!strings.Contains(res.stderr, "guest stderr:\n  panic: faulty: deliberate panic\n") {
		t.Errorf("call panic: exit %d; want the error with the crash report as one block under it:\n%s", res.code, res.stderr)
	}
	// At call's default level (warn) the log's trap line already carries the report: it is shown
	// once, not again under the error.
	res = runCLI(t, t.TempDir(), "call", "--sandbox", "best-effort", capsules["faulty"], "panic")
	if n := strings.Count(res.stderr, "panic: faulty: deliberate panic\n"); res.code != 1 || n != 1 {
		t.Errorf("call panic at the default log level: exit %d, the crash report shown %d times, want once:\n%s", res.code, n, res.stderr)
	}
}
