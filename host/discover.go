package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// ManifestName is the file that makes a directory a capsule.
const ManifestName = "Capsule.toml"

// DiscoverCapsules expands paths into capsule directories: a path that holds a Capsule.toml is a
// capsule; any other directory is searched one level deep for capsule directories, in name order.
// A path that is neither is an error naming it.
//
// A directory holds a Capsule.toml when it has an entry of that name of any kind: whether it is a
// readable regular file is the manifest loader's to say, with a message naming what is wrong,
// rather than discovery's to hide. Symlinks in a directory of capsules are followed, so a capsule
// may be linked in from elsewhere; a symlink that leads nowhere (dangling, or a loop) is skipped,
// and each one skipped is returned in skipped as a sentence naming it and why, for the caller to
// show. Symlinks to something other than a directory are ignored like other files.
func DiscoverCapsules(paths []string) (dirs, skipped []string, err error) {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("capsule path %s: %w", p, err)
		}
		if !fi.IsDir() {
			if filepath.Base(p) == ManifestName {
				dirs = append(dirs, filepath.Dir(p))
				continue
			}
			return nil, nil, fmt.Errorf("capsule path %s is not a directory; give a capsule directory (with %s) or a directory of them", p, ManifestName)
		}
		if hasManifest(p) {
			dirs = append(dirs, p)
			continue
		}
		found, notes, err := capsulesIn(p)
		if err != nil {
			return nil, nil, err
		}
		skipped = append(skipped, notes...)
		if len(found) == 0 {
			msg := fmt.Sprintf("capsule path %s has no %s, and neither has any directory in it", p, ManifestName)
			if len(notes) > 0 {
				msg += " (skipped: " + strings.Join(notes, "; ") + ")"
			}
			return nil, nil, errors.New(msg)
		}
		dirs = append(dirs, found...)
	}
	return dirs, skipped, nil
}

// capsulesIn lists the capsule directories directly inside dir, in name order, following
// symlinks; notes says which symlinks it could not follow.
func capsulesIn(dir string) (found, notes []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("capsule path %s: %w", dir, err)
	}
	for _, e := range entries {
		sub := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
		case e.Type()&fs.ModeSymlink != 0:
			fi, err := os.Stat(sub)
			if err != nil {
				notes = append(notes, symlinkNote(sub, err))
				continue
			}
			if !fi.IsDir() {
				continue // a link to a file, like any other file here
			}
		default:
			continue
		}
		if hasManifest(sub) {
			found = append(found, sub)
		}
	}
	sort.Strings(found)
	return found, notes, nil
}

// symlinkNote says why the symlink at path could not be followed.
func symlinkNote(path string, err error) string {
	target, _ := os.Readlink(path)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return fmt.Sprintf("%s is a symlink loop (%s -> %s)", path, path, target)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s is a symlink to %s, which does not exist", path, target)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("%s is a symlink to %s, which cannot be read: %v", path, target, err)
}

// hasManifest reports whether dir has an entry named Capsule.toml, of any kind.
func hasManifest(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, ManifestName))
	return err == nil
}
