// The C side of package hostfn: wasmtime's C API (wasmtime/linker.h, wasmtime/func.h,
// wasmtime/trap.h, wasmtime/error.h), which wasmtime-go links, and the trampoline. The types are
// opaque here: pointers are passed through as wasmtime made them.
#ifndef ASTRID_HOSTFN_H
#define ASTRID_HOSTFN_H

#include <stddef.h>
#include <stdint.h>

typedef struct wasmtime_linker wasmtime_linker_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasm_trap_t wasm_trap_t;

// wasmtime_val_raw_t: a union of 16 bytes whose i32, i64, f32 and f64 members start at its first
// byte (little-endian).
typedef struct {
	uint64_t lo, hi;
} astrid_val_raw_t;

// wasm_byte_vec_t, as wasmtime_error_message fills it.
typedef struct {
	size_t size;
	char *data;
} astrid_byte_vec_t;

extern void wasmtime_error_message(const wasmtime_error_t *error, astrid_byte_vec_t *message);
extern void wasmtime_error_delete(wasmtime_error_t *error);
extern void wasm_byte_vec_delete(astrid_byte_vec_t *);

// astrid_hostfn_define defines module.name in linker (a wasmtime_linker_t) with the type ty (a
// wasm_functype_t), calling the Go function of the handle env (astridHostfnCall) and freeing it
// (astridHostfnFree) when wasmtime drops the definition.
wasmtime_error_t *astrid_hostfn_define(void *linker, const char *module, size_t module_len,
	const char *name, size_t name_len, void *ty, uintptr_t env);

// astrid_hostfn_trap makes a trap with the message msg (copied).
wasm_trap_t *astrid_hostfn_trap(const char *msg, size_t len);

#endif
