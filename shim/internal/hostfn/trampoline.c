// The trampoline of package hostfn (hostfn.go): wasmtime calls astrid_hostfn_trampoline with the
// raw arguments, and it calls the Go side once.
#include "hostfn.h"
#include "_cgo_export.h"

typedef wasm_trap_t *(*astrid_unchecked_callback_t)(void *env, wasmtime_caller_t *caller,
	astrid_val_raw_t *args_and_results, size_t num_args_and_results);

extern wasmtime_error_t *wasmtime_linker_define_func_unchecked(wasmtime_linker_t *linker,
	const char *module, size_t module_len, const char *name, size_t name_len,
	const wasm_functype_t *ty, astrid_unchecked_callback_t cb, void *data, void (*finalizer)(void *));
extern wasm_trap_t *wasmtime_trap_new(const char *msg, size_t msg_len);

static wasm_trap_t *astrid_hostfn_trampoline(void *env, wasmtime_caller_t *caller,
		astrid_val_raw_t *args, size_t n) {
	return astridHostfnCall((uintptr_t)env, caller, args, n);
}

static void astrid_hostfn_finalize(void *env) {
	astridHostfnFree((uintptr_t)env);
}

wasmtime_error_t *astrid_hostfn_define(void *linker, const char *module, size_t module_len,
		const char *name, size_t name_len, void *ty, uintptr_t env) {
	return wasmtime_linker_define_func_unchecked(linker, module, module_len, name, name_len, ty,
		astrid_hostfn_trampoline, (void *)env, astrid_hostfn_finalize);
}

wasm_trap_t *astrid_hostfn_trap(const char *msg, size_t len) {
	return wasmtime_trap_new(msg, len);
}
