package astrid

// Files: the host reads and writes files for the capsule (astrid_fs_* and astrid_read_file,
// astrid_write_file host functions); a capsule has no file system of its own.
//
// A path is one of:
//
//   - "cwd://rest", or a plain path: under the workspace (astrid-host --workspace). A leading
//     "/" is dropped, as upstream: "/etc/passwd" names etc/passwd in the workspace.
//   - "home://rest": under the home directory of the principal the capsule acts for, in the
//     host's state directory.
//   - "/tmp" or "/tmp/rest": that principal's temporary directory, inside its home.
//
// A path with a ".." component is refused, and so is anything that would leave its root
// (symlinks included). Reading needs a [capabilities] fs_read entry covering the path, writing
// (WriteFile, Mkdir, Unlink) an fs_write entry:
//
//	[capabilities]
//	fs_read = ["cwd://", "home://"]
//	fs_write = ["cwd://notes"]
//
// Files are at most MaxFileBytes. FileExists, ReadDir, Stat and ReadFile return the host's
// refusals and failures as a *HostError; Mkdir, Unlink and WriteFile trap the call, as
// upstream, so their errors are only for what the SDK detects itself.

// Limits of the file functions.
const (
	// MaxPathBytes is the longest path: 4 KiB.
	MaxPathBytes = 4 << 10
	// MaxFileBytes is the largest file ReadFile reads and WriteFile writes: 10 MiB.
	MaxFileBytes = 10 << 20
)

// FileExists reports whether path names an existing file or directory.
func FileExists(path string) (bool, error) {
	if err := checkLen("FileExists", "path", len(path), MaxPathBytes); err != nil {
		return false, err
	}
	return decodeExists(callHost(hostFsExists, []byte(path)))
}

// ReadFile returns the content of the file at path.
func ReadFile(path string) ([]byte, error) {
	if err := checkLen("ReadFile", "path", len(path), MaxPathBytes); err != nil {
		return nil, err
	}
	b, err := decodeHostResult("astrid_read_file", callHost(hostReadFile, []byte(path)))
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// WriteFile writes data to the file at path, creating it or replacing its content. Its
// directory must exist (see Mkdir). The host traps the call when it refuses or fails.
func WriteFile(path string, data []byte) error {
	if err := checkLen("WriteFile", "path", len(path), MaxPathBytes); err != nil {
		return err
	}
	if err := checkLen("WriteFile", "content", len(data), MaxFileBytes); err != nil {
		return err
	}
	p := AllocateString(path)
	d := AllocateBytes(data)
	hostWriteFile(p.handle, d.handle)
	d.Free()
	p.Free()
	return nil
}

// Mkdir creates the directory path (and, as upstream, any missing parents). The host traps the
// call when it refuses or fails.
func Mkdir(path string) error {
	return callPath("Mkdir", hostFsMkdir, path)
}

// Unlink removes the file or empty directory at path. The host traps the call when it refuses
// or fails (a path that does not exist included).
func Unlink(path string) error {
	return callPath("Unlink", hostFsUnlink, path)
}

// ReadDir returns the names of the entries of the directory path (not full paths), empty (not
// nil) for an empty directory.
func ReadDir(path string) ([]string, error) {
	if err := checkLen("ReadDir", "path", len(path), MaxPathBytes); err != nil {
		return nil, err
	}
	return decodeNames("astrid_fs_readdir", callHost(hostFsReaddir, []byte(path)))
}

// Stat returns the size, kind and modification time of the file or directory at path.
func Stat(path string) (FileInfo, error) {
	if err := checkLen("Stat", "path", len(path), MaxPathBytes); err != nil {
		return FileInfo{}, err
	}
	return decodeStat(callHost(hostFsStat, []byte(path)))
}

// callPath calls the void path function fn after checking the path's length.
func callPath(op string, fn func(uint64), path string) error {
	if err := checkLen(op, "path", len(path), MaxPathBytes); err != nil {
		return err
	}
	p := AllocateString(path)
	fn(p.handle)
	p.Free()
	return nil
}
