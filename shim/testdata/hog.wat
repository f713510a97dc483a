;; A guest that takes all it can of what grows in its Store: its linear memory (grow_memory: a
;; page at a time until memory.grow refuses), its table (grow_table: table.grow by the input's
;; u64, returning 1 when refused; table_size: 0 when the table has the input's u64 elements) and
;; the kernel's memory (fill_kernel: 64 KiB blocks until alloc refuses).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (memory (export "memory") 1)
  (table $t (export "table") 1 funcref)
  (func (export "grow_memory") (result i32)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (i32.const 0))
  (func (export "grow_table") (result i32)
    (i32.eq (table.grow $t (ref.null func) (i32.wrap_i64 (call $input_load_u64 (i64.const 0)))) (i32.const -1)))
  (func (export "table_size") (result i32)
    (i32.ne (table.size $t) (i32.wrap_i64 (call $input_load_u64 (i64.const 0)))))
  (func (export "fill_kernel") (result i32)
    (loop $more (br_if $more (i64.ne (call $alloc (i64.const 65536)) (i64.const 0))))
    (i32.const 0))
  (func (export "nop") (result i32) (i32.const 0)))
