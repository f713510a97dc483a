package host

import (
	"context"
	"os"
	"sync"
)

// compileClaims makes the loads of one module on a cold cache compile it once. The first load
// that finds no artefact at a path claims the path and compiles; a load that finds the path
// claimed waits until the claim ends (the artefact is stored, or the compile failed) and looks
// in the cache again. Without it, a boot of several capsules sharing a module compiled it in up
// to loadConcurrency shims at once: each costs the compile's CPU, and each shim kept its own
// copy of the compiled code instead of mapping the one cached artefact.
type compileClaims struct {
	mu sync.Mutex
	// claimed maps an artefact path to a channel closed when its claim ends.
	claimed map[string]chan struct{}
}

// claim claims path for a compile: release (nil if it is claimed already) ends the claim, once,
// however often it is called. Otherwise wait is closed when the claim under way ends.
func (c *compileClaims) claim(path string) (release func(), wait <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.claimed[path]; ok {
		return nil, ch
	}
	if c.claimed == nil {
		c.claimed = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	c.claimed[path] = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.claimed, path)
			c.mu.Unlock()
			close(ch)
		})
	}, nil
}

// openOrClaim returns the cached artefact at path (checked, as openArtefact opens it), or nil and
// the claim to compile it (see compileClaims), waiting first for a compile of the same path under
// way. When ctx ends while it waits, it returns nil and a release that does nothing: the load
// then fails on ctx.
func (h *Host) openOrClaim(ctx context.Context, open func() *os.File, path string) (*os.File, func()) {
	for {
		if f := open(); f != nil {
			return f, nil
		}
		release, wait := h.compiles.claim(path)
		if release != nil {
			return nil, release
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, func() {}
		}
	}
}
