package sandbox

import (
	"errors"
	"os"
)

// statusPipe is the host's end of the helper's status channel.
type statusPipe struct{ r *os.File }

// Support is what this machine offers, layer by layer (see Probe).
type Support struct{}

func (s *Sandbox) helperCommand(spec Spec) (*Cmd, error) {
	return nil, errors.New("sandbox: the helper is not built yet; use --sandbox=off")
}

func (c *Cmd) startHelper() error        { return errors.New("not built") }
func (c *Cmd) waitHelper() (Exit, error) { return Exit{}, errors.New("not built") }
func (c *Cmd) killTree() error           { return KillGroup(c.Process.Pid) }
