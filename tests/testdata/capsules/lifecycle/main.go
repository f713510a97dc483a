//go:build wasip1

// Command lifecycle is a test-only capsule for `astrid-host install`'s lifecycle hooks.
//
//   - astrid_install and astrid_upgrade append "install:INPUT" or "upgrade:INPUT" (INPUT being
//     the hook's input: "" on a first install, the previous version on an upgrade) to the KV key
//     "hooks", each entry preceded by ";", and return the entry. When the configuration value
//     fail_hook is "yes" (an [env] default of the installed Capsule.toml) they fail instead,
//     recording nothing.
//   - hooks returns the KV key "hooks": every hook that ran, in order.
//   - echo returns its input.
package main

import (
	"errors"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

const hooksKey = "hooks"

//go:wasmexport astrid_install
func install() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) { return record("install", in) })
}

//go:wasmexport astrid_upgrade
func upgrade() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) { return record("upgrade", in) })
}

func record(hook string, in []byte) ([]byte, error) {
	if v, _ := astrid.Config("fail_hook"); v == "yes" {
		return nil, errors.New(hook + " hook refused: fail_hook is set")
	}
	prev, err := astrid.KVGet(hooksKey)
	if err != nil {
		return nil, err
	}
	entry := hook + ":" + string(in)
	if err := astrid.KVSet(hooksKey, append(append(prev, ';'), entry...)); err != nil {
		return nil, err
	}
	return []byte(entry), nil
}

//go:wasmexport hooks
func hooks() int32 {
	return astrid.Export(func([]byte) ([]byte, error) { return astrid.KVGet(hooksKey) })
}

//go:wasmexport echo
func echo() int32 { return astrid.Export(func(in []byte) ([]byte, error) { return in, nil }) }
