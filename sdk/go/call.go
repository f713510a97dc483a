package astrid

// Input returns a copy of the current call's input (empty, not nil, if there
// is none). Each call reads the input from the kernel again.
func Input() []byte {
	m := InputMemory()
	b := make([]byte, m.length)
	m.Load(b)
	return b
}

// InputString returns the current call's input as a string.
func InputString() string {
	return string(Input())
}

// InputMemory returns the kernel block that holds the current call's input,
// without copying it (the zero Memory if the input is empty), for instance to
// pass the input on to a host function. The block belongs to the kernel: do
// not Free it or Store into it.
func InputMemory() Memory {
	n := kernelInputLength()
	if n == 0 {
		return Memory{}
	}
	return Memory{handle: kernelInputOffset(), length: n}
}

// Output sets the current call's output to a copy of b, replacing any output
// set earlier in the call.
func Output(b []byte) {
	OutputMemory(AllocateBytes(b))
}

// OutputString sets the current call's output to s, replacing any output set
// earlier in the call.
func OutputString(s string) {
	Output([]byte(s))
}

// OutputMemory sets the current call's output to the content of block m,
// without copying it; the zero Memory sets an empty output. The host may read
// the block only when the export returns, so m must not be freed afterwards
// (the kernel reclaims it when the call ends).
func OutputMemory(m Memory) {
	if m.handle == 0 {
		// Handle 0 means "no block", and alloc(0) returns 0: point the
		// output at zero bytes of a real block rather than at nothing.
		m = Allocate(1)
		m.length = 0
	}
	kernelOutputSet(m.handle, m.length)
}

// SetError sets the current call's error message to err.Error(). It does
// nothing if err is nil. The message is reported by the host only if the
// export then returns a non-zero value; Export does both.
func SetError(err error) {
	if err != nil {
		SetErrorString(err.Error())
	}
}

// SetErrorString sets the current call's error message to msg, replacing any
// message set earlier in the call. The kernel cannot hold an empty message,
// so SetErrorString("") does nothing. The message is reported by the host
// only if the export then returns a non-zero value.
func SetErrorString(msg string) {
	if msg == "" {
		return
	}
	// Not freed: the host reads the message after the export returns, and
	// the kernel reclaims the block when the call ends.
	kernelErrorSet(AllocateString(msg).handle)
}

// Export runs fn as the body of an exported function and returns the value
// the export must return: it calls fn with the call's input; if fn returns an
// error, it sets the error message and returns 1, otherwise it sets the
// output to fn's result (if that is non-empty; fn may also have called Output
// itself) and returns 0.
//
//	//go:wasmexport greet
//	func greet() int32 { return astrid.Export(greetImpl) }
//
// Export does not recover panics: a panic in fn prints its message to the
// capsule's stderr and traps the call, as it would in any Go program. An
// error whose message is empty fails the call without a message.
func Export(fn func(input []byte) ([]byte, error)) int32 {
	out, err := fn(Input())
	if err != nil {
		SetError(err)
		return 1
	}
	if len(out) > 0 {
		Output(out)
	}
	return 0
}
