package host

// effectivePrincipal is the principal the instance's host functions act for: during an
// interceptor invocation, the principal of the bus message it handles (its KV namespace, its
// home directory, the principal its publishes carry); otherwise the capsule's own.
func (i *Instance) effectivePrincipal() string { return i.ipc.principal }
