package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/host/envconfig"
	"github.com/astrid-go/astrid/host/manifest"
)

// terminal is a pseudo-terminal: the program under test reads and writes tty; the test types on
// and reads the screen from the controlling side.
type terminal struct {
	t    *testing.T
	ptmx *os.File
	tty  *os.File

	mu     sync.Mutex
	screen bytes.Buffer
	seen   int // how much of screen expect has consumed
	notify chan struct{}
	done   chan struct{}
	// prog ends when the program under test (started with run) returns, with its error.
	prog chan error
}

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	term := &terminal{t: t, ptmx: ptmx, tty: tty, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.screen.Write(buf[:n])
			term.mu.Unlock()
			select {
			case term.notify <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(term.close)
	return term
}

// run starts the program under test on the terminal.
func (term *terminal) run(prog func() error) {
	term.prog = make(chan error, 1)
	go func() { term.prog <- prog() }()
}

// wait returns the program's error.
func (term *terminal) wait() error {
	err := <-term.prog
	term.prog = nil
	return err
}

func (term *terminal) close() {
	// A program still reading (a test that failed half-way) holds the tty open: end its input
	// with Ctrl-D until it returns, so that closing the terminal ends the screen reader.
	for i := 0; term.prog != nil && i < 100; i++ {
		term.ptmx.Write([]byte{4})
		select {
		case <-term.prog:
			term.prog = nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	term.tty.Close()
	term.ptmx.Close()
	<-term.done
}

// expect waits until the screen shows want after what earlier expects consumed. The deadline
// only turns a hang into a failure.
func (term *terminal) expect(want string) {
	term.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		term.mu.Lock()
		rest := term.screen.String()[term.seen:]
		if i := strings.Index(rest, want); i >= 0 {
			term.seen += i + len(want)
			term.mu.Unlock()
			return
		}
		term.mu.Unlock()
		select {
		case <-term.notify:
		case <-deadline:
			term.t.Fatalf("the terminal never showed %q; it shows:\n%s", want, term.all())
		}
	}
}

// typeLine types s and Enter.
func (term *terminal) typeLine(s string) {
	term.t.Helper()
	if _, err := term.ptmx.Write([]byte(s + "\r")); err != nil {
		term.t.Fatal(err)
	}
}

func (term *terminal) all() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.screen.String()
}

func loadWeather(t *testing.T) *manifest.Manifest {
	t.Helper()
	dir := writeCapsule(t, filepath.Join(t.TempDir(), "weather"), weatherToml)
	m, _, err := manifest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPromptEnv: on a terminal, promptEnv asks for each missing value (a secret without echo,
// an enum by value or number, an array one item a line, a one-value enum's proposal taken with
// Enter), asks again after a value the key does not allow, and saves the answers.
func TestPromptEnv(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the terminal's cleanup
	m := loadWeather(t)
	state := t.TempDir()
	term := newTerminal(t)
	term.run(func() error { return promptEnv(term.tty, io.Discard, term.tty, state, m) })

	const secret = "sk-HIDDEN-4242"
	term.expect("Capsule weather needs configuration:")
	term.expect("From the dashboard\\x1b[31m") // the manifest's escape, escaped
	term.expect("e.g. sk-...")
	term.expect("Your API key (input hidden): ")
	term.typeLine(secret)
	term.expect("hosts (one value per line, an empty line ends):")
	term.expect("> ")
	term.typeLine("a.example")
	term.expect("> ")
	term.typeLine("b.example")
	term.expect("> ")
	term.typeLine("")
	term.expect("1) testnet")
	term.expect("2) mainnet")
	term.expect("network [testnet]: ")
	term.typeLine("devnet")
	term.expect(`network: "devnet" is not one of its values: "testnet", "mainnet"`)
	term.expect("network [testnet]: ")
	term.typeLine("2")
	term.expect("region [eu]: ")
	term.typeLine("")
	term.expect("Configuration saved in " + envconfig.Path(state, "weather"))
	if err := term.wait(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(term.all(), secret) {
		t.Errorf("the secret was echoed:\n%s", term.all())
	}
	if strings.ContainsRune(term.all(), 0x1b) {
		t.Errorf("a terminal escape from the manifest reached the terminal")
	}
	saved, err := readSaved(t, state, "weather")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"api_key": secret, "hosts": `["a.example","b.example"]`, "network": "mainnet", "region": "eu"}
	if len(saved) != len(want) {
		t.Errorf("saved %v, want %v", saved, want)
	}
	for k, v := range want {
		if saved[k] != v {
			t.Errorf("saved %s = %q, want %q", k, saved[k], v)
		}
	}

	// Nothing is missing any more: no question is asked.
	if err := promptEnv(term.tty, io.Discard, term.tty, state, m); err != nil {
		t.Fatal(err)
	}
}

// TestPromptEnvEndOfInput: end of input (Ctrl-D) stops the questions; the answers given so far
// are saved, the rest stay missing.
func TestPromptEnvEndOfInput(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the terminal's cleanup
	m := loadWeather(t)
	state := t.TempDir()
	if err := envconfig.Update(state, m, map[string]string{"api_key": "k"}, nil); err != nil {
		t.Fatal(err)
	}
	term := newTerminal(t)
	term.run(func() error { return promptEnv(term.tty, io.Discard, term.tty, state, m) })
	term.expect("hosts (one value per line")
	term.expect("> ")
	term.typeLine("h")
	term.expect("> ")
	term.typeLine("")
	term.expect("network [testnet]: ")
	if _, err := term.ptmx.Write([]byte{4}); err != nil { // Ctrl-D
		t.Fatal(err)
	}
	term.expect("Configuration saved")
	if err := term.wait(); err != nil {
		t.Fatal(err)
	}
	saved, _ := readSaved(t, state, "weather")
	if saved["hosts"] != `["h"]` || saved["api_key"] != "k" || len(saved) != 2 {
		t.Errorf("saved %v", saved)
	}
}

// TestPromptEnvNoTerminal: without a terminal promptEnv does nothing: it reads nothing, writes
// nothing and saves nothing.
func TestPromptEnvNoTerminal(t *testing.T) {
	m := loadWeather(t)
	state := t.TempDir()
	in := strings.NewReader("answer\n")
	var out bytes.Buffer
	if err := promptEnv(in, &out, &out, state, m); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || in.Len() != len("answer\n") {
		t.Errorf("wrote %q, read %d bytes", out.String(), len("answer\n")-in.Len())
	}
	if _, err := os.Stat(envconfig.Path(state, "weather")); !os.IsNotExist(err) {
		t.Errorf("a file was saved: %v", err)
	}
}

// runEnv, when set in the environment, makes the test binary run astrid-host with the JSON
// array of arguments it holds instead of the tests: a real astrid-host process for the tests
// that need one (a signal ends it).
const runEnv = "ASTRID_HOST_TEST_RUN"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(runEnv); ok {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Exit(run(argv, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// echoOn reports whether the terminal echoes what is typed.
func echoOn(t *testing.T, f *os.File) bool {
	t.Helper()
	tios, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tios.Lflag&unix.ECHO != 0
}

// TestPromptSecretInterrupt: Ctrl-C at a secret's prompt (astrid-host config --prompt, its own
// process on the terminal) ends astrid-host by the interrupt as usual, and leaves the terminal
// echoing again.
func TestPromptSecretInterrupt(t *testing.T) {
	dev := writeCapsule(t, filepath.Join(t.TempDir(), "weather"), weatherToml)
	state := t.TempDir()
	term := newTerminal(t)
	args, _ := json.Marshal([]string{"config", "--state", state, "--dir", dev, "--prompt"})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runEnv+"="+string(args))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = term.tty, term.tty, term.tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true} // the terminal is its controlling terminal
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	term.expect("Your API key (input hidden): ")
	if echoOn(t, term.tty) {
		t.Fatal("the terminal echoes at a secret's prompt")
	}
	// Half a secret typed, then Ctrl-C.
	if _, err := term.ptmx.Write([]byte("sk-half\x03")); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Errorf("astrid-host ended with %v; want the interrupt", err)
	}
	if !echoOn(t, term.tty) {
		t.Error("the terminal was left without echo after Ctrl-C at a secret's prompt")
	}
	if strings.Contains(term.all(), "sk-half") {
		t.Errorf("the secret was echoed:\n%s", term.all())
	}
}
