// Package intercept runs a Go capsule's interceptors: importing it exports astrid_hook_trigger,
// the function the host calls for each bus message on a topic that one of the capsule's
// [[interceptor]] events matches, and Handle registers what to do for each action.
//
// Capsule.toml:
//
//	[[interceptor]]
//	event = "session.v1.append"
//	action = "handle_append"
//
// main.go:
//
//	func init() {
//		intercept.Handle("handle_append", func(ev astrid.HookEvent) (astrid.Verdict, error) {
//			var req struct{ SessionID string `json:"session_id"` }
//			if err := ev.Decode(&req); err != nil {
//				return astrid.Verdict{}, err
//			}
//			// ... use astrid.KVGet, astrid.ReadFile, astrid.Publish ...
//			return astrid.Continue(nil), nil
//		})
//	}
//
// Register in init (or a package-level variable's initialiser): a capsule built with
// -buildmode=c-shared never runs main, and the host may call astrid_hook_trigger as soon as
// the capsule is loaded. The host calls interceptors only for capsules without a run export;
// a run-loop capsule reads its interceptors' events with astrid.InterceptorHandles instead.
package intercept

import astrid "github.com/astrid-go/astrid/sdk/go"

// handlers are the capsule's interceptors by action.
var handlers = astrid.Interceptors{}

// Handle registers fn for the [[interceptor]] action: the host's astrid_hook_trigger calls for
// that action run fn, and its Verdict is the answer (an error fails the invocation: the host
// logs it and goes on without this interceptor). Handle panics when action is empty or already
// has a handler, which are mistakes in the capsule's code.
func Handle(action string, fn astrid.InterceptorFunc) {
	if action == "" {
		panic("intercept: Handle: empty action")
	}
	if fn == nil {
		panic("intercept: Handle " + action + ": nil handler")
	}
	if _, dup := handlers[action]; dup {
		panic("intercept: Handle: action " + action + " already has a handler")
	}
	handlers[action] = fn
}

// Dispatch runs the handler of the action that input (astrid_hook_trigger's input) names and
// returns the encoded verdict; the exported astrid_hook_trigger calls it with the call's input.
func Dispatch(input []byte) ([]byte, error) { return handlers.Dispatch(input) }
