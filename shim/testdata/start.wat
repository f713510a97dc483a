;; A guest shaped like an AssemblyScript build: its start function initialises the runtime (a heap
;; pointer in a global, a length in memory), and an Extism-style export relies on it: greet
;; outputs "hello from a start section", or returns 7 if the start function did not run.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 0))
  (data (i32.const 16) "hello from a start section")
  (func $start
    (global.set $heap (i32.const 1024))
    (i32.store (i32.const 0) (i32.const 26)))
  (start $start)
  (func (export "greet") (result i32)
    (local $n i32) (local $h i64) (local $i i32)
    (if (i32.eqz (global.get $heap)) (then (return (i32.const 7))))
    (local.set $n (i32.load (i32.const 0)))
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $n))))
    (block $done (loop $copy
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
        (i32.load8_u offset=16 (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $copy)))
    (call $output_set (local.get $h) (i64.extend_i32_u (local.get $n)))
    (i32.const 0)))
