package fsroot

import "testing"

// TestGate runs upstream's ManifestSecurityGate vectors (security.rs at v0.5.0) and the scheme
// resolution of fs_read/fs_write entries.
func TestGate(t *testing.T) {
	const ws, home = "/workspace", "/home/user/.astrid"
	cases := []struct {
		name         string
		read, write  []string
		path         string
		wantR, wantW bool
	}{
		{"literal prefix", []string{"/workspace/src", "/tmp/exact.txt"}, []string{"*"}, "/workspace/src/main.rs", true, true},
		{"literal exact file", []string{"/workspace/src", "/tmp/exact.txt"}, nil, "/tmp/exact.txt", true, false},
		{"component boundary -", []string{"/workspace/src"}, nil, "/workspace/src-evil/main.rs", false, false},
		{"component boundary _", []string{"/workspace/src"}, nil, "/workspace/src_evil/main.rs", false, false},
		{"exact match", []string{"/workspace/src"}, nil, "/workspace/src", true, false},
		{"wildcard confined to the workspace", nil, []string{"*"}, "/etc/passwd", false, false},
		{"wildcard elsewhere", nil, []string{"*"}, "/random/file.txt", false, false},
		{"dotdot", []string{"/workspace/src"}, []string{"*"}, "/workspace/src/../../etc/passwd", false, false},
		{"cwd://", []string{"cwd://"}, nil, "/workspace/src/main.rs", true, false},
		{"cwd:// elsewhere", []string{"cwd://"}, nil, "/other/path", false, false},
		{"cwd://sub", []string{"cwd://src"}, []string{"cwd://src/"}, "/workspace/src/a", true, true},
		{"home://", []string{"home://"}, nil, "/home/user/.astrid/skills/my-skill/SKILL.md", true, false},
		{"home:// is not the workspace", []string{"home://"}, nil, "/workspace/src/main.rs", false, false},
		{"both", []string{"cwd://", "home://"}, nil, "/home/user/.astrid/config.toml", true, false},
		{"both, elsewhere", []string{"cwd://", "home://"}, nil, "/etc/passwd", false, false},
		{"entry with dotdot grants nothing", []string{"cwd://../"}, nil, "/home/user/.astrid/x", false, false},
		{"relative entry grants nothing", []string{"src"}, nil, "/workspace/src", false, false},
		{"empty entry grants nothing", []string{""}, nil, "/workspace/src", false, false},
		{"nothing declared", nil, nil, "/workspace", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewGate("test", c.read, c.write, ws, home)
			if err := g.CheckRead(c.path); (err == nil) != c.wantR {
				t.Errorf("read %s: %v, want allowed=%v", c.path, err, c.wantR)
			}
			if err := g.CheckWrite(c.path); (err == nil) != c.wantW {
				t.Errorf("write %s: %v, want allowed=%v", c.path, err, c.wantW)
			}
		})
	}
	g := NewGate("cap", nil, nil, ws, "")
	if err := g.CheckRead("/x"); err == nil || err.Error() != "capsule 'cap' denied: read access to '/x' not declared in manifest" {
		t.Errorf("read refusal: %v", err)
	}
	if err := g.CheckWrite("/x"); err == nil || err.Error() != "capsule 'cap' denied: write access to '/x' not declared in manifest" {
		t.Errorf("write refusal: %v", err)
	}
}

// TestGateOneRoot: a call gates with the entries of its own root only, so where the home lies
// inside the workspace (a state directory inside it) a cwd:// entry does not grant it.
func TestGateOneRoot(t *testing.T) {
	const ws, home = "/ws", "/ws/bin/state/home/alice"
	inHome := home + "/notes"
	if err := NewGate("c", []string{"cwd://", "*"}, nil, "", home).CheckRead(inHome); err == nil {
		t.Error("cwd:// and * granted a home path")
	}
	if err := NewGate("c", []string{"home://"}, nil, "", home).CheckRead(inHome); err != nil {
		t.Error(err)
	}
	if err := NewGate("c", []string{"home://"}, nil, ws, "").CheckRead(ws + "/x"); err == nil {
		t.Error("home:// granted a workspace path")
	}
	if err := NewGate("c", []string{"*"}, nil, "", home).CheckRead("/anything"); err == nil {
		t.Error("* without a workspace granted everything")
	}
}
