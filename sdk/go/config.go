package astrid

// Config returns the value of the configuration key and whether it is set.
//
// A capsule's configuration is fixed when the host loads it: the defaults of
// its manifest's [env] table, overridden by the operator (for instance with
// astrid-host call --config KEY=VALUE). The capsule can read it but not
// change it; use variables (Var, SetVar) for state of its own.
//
// The kernel cannot hold an empty block, so a key whose value is the empty
// string reads as not set, and Config("") always returns "", false. A key
// longer than the host's limit (4 KiB) traps the call.
func Config(key string) (string, bool) {
	if key == "" {
		return "", false
	}
	k := AllocateString(key)
	h := kernelConfigGet(k.handle)
	k.Free()
	v := FindMemory(h)
	if v.handle == 0 {
		return "", false
	}
	s := string(v.Bytes())
	v.Free()
	return s, true
}
