package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/astrid-go/astrid/host/internal/safefile"
)

// The store's own entries in STATE/capsules, next to the capsule directories. Their names start
// with "." and so are never capsule names ([a-z0-9-]+), and List skips them.
//
// An install of NAME goes through these steps, each a rename or a removal that a crash can
// interrupt at any point:
//
//  1. copy the capsule into .stage-NAME and write its meta.json there;
//  2. write the journal .pending-NAME ("install" when there was no NAME/meta.json before,
//     "upgrade" when there was);
//  3. rename NAME to .backup-NAME (if NAME exists), then .stage-NAME to NAME;
//  4. run the lifecycle hook on NAME;
//  5. remove .pending-NAME: this is the commit point;
//  6. remove .backup-NAME.
//
// A failed hook undoes step 3 (NAME goes to a .trash- directory, .backup-NAME back to NAME) and
// removes the journal. Recover, run by the next Install, Uninstall or `astrid-host list`, finishes
// whatever a crash interrupted the same way: an install whose journal is still there did not
// commit and is rolled back; a backup without a journal belongs to a committed install and is
// removed; staging and trash directories are removed.
const (
	stagePrefix   = ".stage-"
	backupPrefix  = ".backup-"
	pendingPrefix = ".pending-"
	trashPrefix   = ".trash-"
)

// Journal contents: what NAME was before the install that wrote the journal.
const (
	journalInstall = "install" // no previous install: a NAME that exists is the new, uncommitted one
	journalUpgrade = "upgrade" // a previous install: it is .backup-NAME, or still NAME before the swap
)

func stageDir(stateDir, name string) string {
	return filepath.Join(Dir(stateDir), stagePrefix+name)
}

func backupDir(stateDir, name string) string {
	return filepath.Join(Dir(stateDir), backupPrefix+name)
}

func journalPath(stateDir, name string) string {
	return filepath.Join(Dir(stateDir), pendingPrefix+name)
}

// writeJournal records that an install of name is under way, durably, before anything in the
// store's capsule directories changes.
func writeJournal(stateDir, name, kind string) error {
	path := journalPath(stateDir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_SYNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write the install journal %s: %w", path, err)
	}
	_, err = f.WriteString(kind + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the install journal %s: %w", path, err)
	}
	return syncDir(Dir(stateDir))
}

// removeJournal removes the journal of name, durably: after it, the install is committed (or,
// after a rollback, forgotten).
func removeJournal(stateDir, name string) error {
	if err := os.Remove(journalPath(stateDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the install journal: %w", err)
	}
	return syncDir(Dir(stateDir))
}

// discard takes dir out of the store at once (a rename into a .trash- directory, so no half-
// removed capsule is ever visible under its name) and then removes it. A crash between the two
// leaves a trash directory that the next Recover removes.
func discard(stateDir, dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	trash := filepath.Join(Dir(stateDir), trashPrefix+strings.TrimPrefix(filepath.Base(dir), ".")+"-"+hex.EncodeToString(rnd[:]))
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if err := syncDir(Dir(stateDir)); err != nil {
		return err
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove %s: %w", trash, err)
	}
	return nil
}

// rollback puts back what name was before the install that journaled kind: the new NAME is
// discarded and .backup-NAME, if any, renamed back to NAME; then the journal is removed.
func rollback(stateDir, name, kind string) error {
	dir, backup := CapsuleDir(stateDir, name), backupDir(stateDir, name)
	_, berr := os.Lstat(backup)
	hasBackup := berr == nil
	// Without a backup, an upgrade's NAME is still the previous install (the swap had not
	// begun, or a rollback had already put it back): keep it.
	if hasBackup || kind == journalInstall {
		if err := discard(stateDir, dir); err != nil {
			return err
		}
	}
	if hasBackup {
		if err := os.Rename(backup, dir); err != nil {
			return fmt.Errorf("restore the previous install of %s from %s: %w", name, backup, err)
		}
		if err := syncDir(Dir(stateDir)); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(stageDir(stateDir, name)); err != nil {
		return fmt.Errorf("remove %s: %w", stageDir(stateDir, name), err)
	}
	return removeJournal(stateDir, name)
}

// Recover finishes what an Install or Uninstall interrupted by a crash left in the store (see
// the steps above) and returns one line for each thing it did. It takes the store's lock and
// fails with ErrBusy while another install holds it. A store that does not exist needs nothing.
func Recover(stateDir string) ([]string, error) {
	if _, err := os.Stat(Dir(stateDir)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	l, err := lockStore(stateDir)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	return recoverLocked(stateDir)
}

// Pending reports whether an install or uninstall of name has begun and not yet committed: its
// journal is in the store. While it is, STATE/capsules/NAME may be a version whose hook has not
// run (or has failed), which the install's rollback (or the next Recover) will put back.
func Pending(stateDir, name string) bool {
	_, err := os.Lstat(journalPath(stateDir, name))
	return err == nil
}

// recoverLocked is Recover for a caller that holds the lock.
func recoverLocked(stateDir string) ([]string, error) {
	entries, err := os.ReadDir(Dir(stateDir))
	if err != nil {
		return nil, fmt.Errorf("read the capsule store: %w", err)
	}
	var done []string
	// Journals first: a rollback needs the backup that the loop below would otherwise remove.
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), pendingPrefix)
		if !ok {
			continue
		}
		data, err := safefile.ReadFile(filepath.Join(Dir(stateDir), e.Name()), 64)
		kind := strings.TrimSpace(string(data))
		if err != nil || kind != journalInstall && kind != journalUpgrade {
			// Unreadable: the journal was being written, so nothing had been swapped yet.
			kind = journalUpgrade
		}
		if err := rollback(stateDir, name, kind); err != nil {
			return done, fmt.Errorf("recover the interrupted install of %s: %w", name, err)
		}
		done = append(done, fmt.Sprintf("rolled back an interrupted install of %s (it had not finished; the store holds what it held before)", name))
	}
	entries, err = os.ReadDir(Dir(stateDir))
	if err != nil {
		return done, fmt.Errorf("read the capsule store: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(Dir(stateDir), e.Name())
		switch {
		case strings.HasPrefix(e.Name(), backupPrefix):
			// No journal: the install it was kept for committed.
			if err := os.RemoveAll(path); err != nil {
				return done, fmt.Errorf("remove %s: %w", path, err)
			}
			done = append(done, "removed the backup of a finished install: "+e.Name())
		case strings.HasPrefix(e.Name(), stagePrefix), strings.HasPrefix(e.Name(), trashPrefix):
			if err := os.RemoveAll(path); err != nil {
				return done, fmt.Errorf("remove %s: %w", path, err)
			}
			done = append(done, "removed what an interrupted install or uninstall left: "+e.Name())
		}
	}
	return done, nil
}
