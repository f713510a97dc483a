package callwire

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// requests are the requests one end of a connection has sent (the host's calls, the shim's host
// calls) and waits for answers to, by id.
type requests[R any] struct {
	mu      sync.Mutex
	lastID  uint64
	waiting map[uint64]chan answer[R]
	ended   error // set once the connection has ended: no request is sent after
}

type answer[R any] struct {
	resp R
	err  error
}

// send registers a new request and sends it with write(id); its answer will come on ch.
func (r *requests[R]) send(write func(id uint64) error) (id uint64, ch chan answer[R], err error) {
	ch = make(chan answer[R], 1)
	r.mu.Lock()
	if r.ended != nil {
		err := r.ended
		r.mu.Unlock()
		return 0, nil, unavailable(err)
	}
	if r.waiting == nil {
		r.waiting = map[uint64]chan answer[R]{}
	}
	r.lastID++
	id = r.lastID
	r.waiting[id] = ch
	r.mu.Unlock()
	if err := write(id); err != nil {
		r.take(id)
		return 0, nil, unavailable(err)
	}
	return id, ch, nil
}

// abandon gives up waiting for request id because ctx ended: cancelled(id) is called (if not
// nil) and the context's error returned as a gRPC status.
func (r *requests[R]) abandon(ctx context.Context, id uint64, cancelled func(id uint64)) (R, error) {
	var zero R
	r.take(id)
	if cancelled != nil {
		cancelled(id)
	}
	return zero, status.FromContextError(ctx.Err()).Err()
}

// take removes the request id from those waiting, and returns its channel if it was waiting.
func (r *requests[R]) take(id uint64) (chan answer[R], bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.waiting[id]
	delete(r.waiting, id)
	return ch, ok
}

// deliver hands a its answer to the request id. waited says a request was waiting for it; sent
// says the id is one this end has used (an answer to an abandoned request, otherwise one to a
// request never made).
func (r *requests[R]) deliver(id uint64, a answer[R]) (waited, sent bool) {
	ch, ok := r.take(id)
	if ok {
		ch <- a
	}
	r.mu.Lock()
	sent = id != 0 && id <= r.lastID
	r.mu.Unlock()
	return ok, sent
}

// end fails every waiting request, and every later one, with Unavailable naming err.
func (r *requests[R]) end(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = err
	for id, ch := range r.waiting {
		ch <- answer[R]{err: unavailable(err)}
		delete(r.waiting, id)
	}
}

func unavailable(err error) error {
	return status.Errorf(codes.Unavailable, "the shim's call connection ended: %v", err)
}
