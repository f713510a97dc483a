package host

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// ManifestName is the file that makes a directory a capsule.
const ManifestName = "Capsule.toml"

// DiscoverCapsules expands paths into capsule directories: a path that holds a Capsule.toml is a
// capsule; any other directory is searched one level deep for capsule directories, in name order.
// A path that is neither is an error naming it.
func DiscoverCapsules(paths []string) ([]string, error) {
	var dirs []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("capsule path %s: %w", p, err)
		}
		if !fi.IsDir() {
			if filepath.Base(p) == ManifestName {
				dirs = append(dirs, filepath.Dir(p))
				continue
			}
			return nil, fmt.Errorf("capsule path %s is not a directory; give a capsule directory (with %s) or a directory of them", p, ManifestName)
		}
		if isCapsuleDir(p) {
			dirs = append(dirs, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("capsule path %s: %w", p, err)
		}
		var found []string
		for _, e := range entries {
			sub := filepath.Join(p, e.Name())
			if e.IsDir() && isCapsuleDir(sub) {
				found = append(found, sub)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("capsule path %s has no %s, and neither has any directory in it", p, ManifestName)
		}
		sort.Strings(found)
		dirs = append(dirs, found...)
	}
	return dirs, nil
}

func isCapsuleDir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, ManifestName))
	return err == nil && fi.Mode().IsRegular()
}
