package host

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/store"
)

// WorkspaceCapsulesDir is the workspace's own capsule directory, relative to the workspace:
// upstream's .astrid/capsules. It is laid out like the store (one directory per capsule, with its
// meta.json) and verified like it.
const WorkspaceCapsulesDir = ".astrid/capsules"

// Found is a capsule directory discovery found, and where.
type Found struct {
	Dir string
	// Place names where it was found, for messages: "the store (DIR)", "the workspace (DIR)" or
	// "the command line".
	Place string
	// Installed is the meta.json the capsule's module is verified against (LoadOptions.Installed):
	// set for every capsule of the store and of the workspace's .astrid/capsules (empty, so that
	// the load is refused, when its meta.json could not be read), nil for a development capsule
	// given on the command line.
	Installed *store.Meta
}

// DiscoverPaths is DiscoverCapsules for `run PATH...`: the capsule directories under paths, as
// development capsules (loaded unverified).
func DiscoverPaths(paths []string) (found []Found, skipped []string, err error) {
	dirs, skipped, err := DiscoverCapsules(paths)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range dirs {
		found = append(found, Found{Dir: d, Place: "the command line"})
	}
	return found, skipped, nil
}

// DiscoverInstalled lists the capsules `run` loads when it is given no PATH, in upstream's
// priority order: the store (STATE/capsules), then the workspace's .astrid/capsules, each in name
// order. Both are read as the store is (store.List): each directory holding a Capsule.toml is a
// capsule, directories whose names start with "." and symlinks are not, and each capsule is
// verified against its meta.json when it loads (upstream verifies every module it loads). A
// directory that does not exist holds no capsule. notes says, for each capsule whose meta.json
// could not be read, why (its load will be refused), for the caller to log.
func DiscoverInstalled(stateDir, workspace string) (found []Found, notes []string, err error) {
	places := []struct{ place, dir, root string }{
		{"the store", store.Dir(stateDir), stateDir},
		{"the workspace", filepath.Join(workspace, WorkspaceCapsulesDir), filepath.Join(workspace, filepath.Dir(WorkspaceCapsulesDir))},
	}
	for _, p := range places {
		// An install that a crash interrupted is finished (or undone) first, as install, uninstall
		// and list do; while another install holds the store, the capsules it is changing are
		// left out, as they may not have passed their hook yet.
		recovered, rerr := store.Recover(p.root)
		for _, r := range recovered {
			notes = append(notes, fmt.Sprintf("%s: recovered from an interrupted install: %s", p.dir, r))
		}
		busy := errors.Is(rerr, store.ErrBusy)
		if rerr != nil && !busy {
			return nil, nil, fmt.Errorf("%s %s: %w", p.place, p.dir, rerr)
		}
		// store.List reads ROOT/capsules: for the workspace, ROOT is WORKSPACE/.astrid.
		list, err := store.List(p.root)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", p.place, p.dir, err)
		}
		for _, in := range list {
			if busy && store.Pending(p.root, in.Name) {
				notes = append(notes, fmt.Sprintf("%s: skipped: an install or uninstall of it is under way", in.Dir))
				continue
			}
			f := Found{Dir: in.Dir, Place: fmt.Sprintf("%s (%s)", p.place, p.dir), Installed: in.Meta}
			if in.Meta == nil {
				f.Installed = &store.Meta{}
				notes = append(notes, fmt.Sprintf("%s: cannot read its %s (%v); it will be refused as unverified", in.Dir, store.MetaName, in.MetaErr))
			}
			found = append(found, f)
		}
	}
	return found, notes, nil
}

// ReadCapsules reads the manifest of each capsule found and returns those to boot, in the order
// found, each with opts and its Installed meta. A capsule whose manifest is invalid is skipped,
// and so is one whose package.name was found before: the first of a name wins (upstream's
// priority: the store before the workspace). log gets a line for each one skipped, naming both
// places for a duplicate, and each manifest warning.
func ReadCapsules(found []Found, opts LoadOptions, log hclog.Logger) []Capsule {
	first := map[string]Found{}
	var caps []Capsule
	for _, f := range found {
		m, warnings, err := manifest.Load(f.Dir)
		for _, w := range warnings {
			log.Warn("manifest warning", "dir", f.Dir, "problem", w.String())
		}
		if err != nil {
			log.Error("capsule skipped: invalid manifest", "dir", f.Dir, "from", f.Place, "problems", err.Error())
			continue
		}
		if prev, dup := first[m.ID()]; dup {
			log.Warn("capsule skipped: a capsule of this name was found first", "capsule", m.ID(),
				"skipped", f.Dir, "skipped_from", f.Place, "loaded", prev.Dir, "loaded_from", prev.Place)
			continue
		}
		first[m.ID()] = f
		o := opts
		o.Installed = f.Installed
		caps = append(caps, Capsule{Manifest: m, Options: o})
	}
	return caps
}
