//go:build !wasip1 || tinygo

package astrid

// makeNoZero returns a new byte slice of length n, for a caller that overwrites all of it (in a
// capsule built with Go, without clearing it first: alloc_wasip1.go).
func makeNoZero(n int) []byte { return make([]byte, n) }
