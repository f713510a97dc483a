package host

import (
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/store"
	"github.com/astrid-go/astrid/shared/logtext"
)

// Integrity of installed capsules: a capsule of the store is verified at every load (its module's
// BLAKE3 against its meta.json), a development capsule is not, and the log says which.

// storeOptions completes opts for a capsule whose directory is in the host's store
// (STATE/capsules/NAME) but that was given without LoadOptions.Installed (a path on the command
// line): it is an installed capsule all the same, verified against its meta.json, so that naming
// a store directory cannot load a changed module unverified. A meta.json that cannot be read
// counts as one without a hash, and the load is refused.
func (h *Host) storeOptions(m *manifest.Manifest, opts LoadOptions) LoadOptions {
	if opts.Installed != nil || m.Path == "" || !store.Holds(h.cfg.StateDir, m.Dir) {
		return opts
	}
	meta, err := store.ReadMeta(m.Dir)
	if err != nil {
		h.log.Named(m.ID()).Warn("cannot read the installed capsule's meta.json", "error", logtext.Escape(err.Error()))
		meta = &store.Meta{}
	}
	opts.Installed = meta
	return opts
}

// readVerifiedModule reads an installed capsule's module once, checks it against its meta.json
// (store.VerifyModule: upstream's refusals of a missing or different BLAKE3 hash) and returns
// the bytes with their SHA-256, the module cache's key, computed from the same bytes.
func readVerifiedModule(m *manifest.Manifest, meta *store.Meta) ([]byte, string, error) {
	wasm, sum, err := readModule(m.WasmPath())
	if err != nil {
		return nil, "", err
	}
	if err := store.VerifyModule(m.ID(), meta, wasm); err != nil {
		return nil, "", err
	}
	return wasm, sum, nil
}

// source says, for the loading log line, where the capsule comes from.
func (o LoadOptions) source() string {
	if o.Installed == nil {
		return "development capsule (a directory, not the store: its module is not verified)"
	}
	return "store (its module is checked against meta.json's BLAKE3 hash)"
}

// integrity says, for the loaded log line, whether the module was verified.
func (o LoadOptions) integrity() string {
	if o.Installed == nil {
		return "unverified development capsule (no BLAKE3 check)"
	}
	return "BLAKE3 verified against meta.json"
}
