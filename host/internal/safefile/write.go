package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteAtomic replaces the file at path with data, atomically and durably: a temporary file in
// the same directory (created 0600, so a file of secrets is never readable by others, even for a
// moment), synced, renamed over path, and the directory synced. A reader sees the old content or
// the new, never part of it; on an error path is unchanged and the temporary file removed.
func WriteAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	return SyncDir(dir)
}

// RemoveDurable removes the file at path, durably (its directory synced); a file that does not
// exist is not an error. It is WriteAtomic's counterpart for a file that has become empty.
func RemoveDurable(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes a rename or removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
