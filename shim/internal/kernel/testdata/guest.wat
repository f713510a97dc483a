;; A test guest for package kernel: one export per scenario, all () -> i32.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "length_unsafe" (func $length_unsafe (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "test" "upper" (func $upper (param i64) (result i64)))
  (import "test" "upper_caller" (func $upper_caller (param i64) (result i64)))

  (memory (export "memory") 4)
  (data (i32.const 1024) "guest says no: \c3\bcnicode")  ;; 23 bytes

  ;; word i of the result list in guest memory
  (func $put (param $i i32) (param $v i64)
    (i64.store (i32.shl (local.get $i) (i32.const 3)) (local.get $v)))

  ;; output the first n words of the result list
  (func $emit (param $n i32) (result i32)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.extend_i32_u (i32.shl (local.get $n) (i32.const 3)))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $store_u64
          (i64.add (local.get $h) (i64.extend_i32_u (i32.shl (local.get $i) (i32.const 3))))
          (i64.load (i32.shl (local.get $i) (i32.const 3))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $output_set (local.get $h) (i64.extend_i32_u (i32.shl (local.get $n) (i32.const 3))))
    (i32.const 0))

  ;; input -> output with input_load_u64/store_u64, then input_load_u8/store_u8 for the tail
  (func (export "echo") (result i32)
    (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $h (call $alloc (local.get $n)))
    (block $done
      (loop $l
        (br_if $done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $n)))
        (call $store_u64 (i64.add (local.get $h) (local.get $i)) (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $l)))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (call $output_set (local.get $h) (local.get $n))
    (i32.const 0))

;; the input block is the output: what a guest that hands its input on moves through the kernel
  (func (export "pass") (result i32)
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0))

    ;; copy block src (n bytes) to a new block with load_u64/store_u64 alternating between the two
  ;; blocks, then load_u8/store_u8 for the tail; returns the new block
  (func $copy_block (param $src i64) (param $n i64) (result i64)
    (local $h i64) (local $i i64)
    (local.set $h (call $alloc (local.get $n)))
    (block $done
      (loop $l
        (br_if $done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $n)))
        (call $store_u64 (i64.add (local.get $h) (local.get $i)) (call $load_u64 (i64.add (local.get $src) (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $l)))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $load_u8 (i64.add (local.get $src) (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.get $h))

  (func (export "copy") (result i32)
    (local $n i64)
    (local.set $n (call $input_length))
    (call $output_set (call $copy_block (call $input_offset) (local.get $n)) (local.get $n))
    (i32.const 0))

  ;; error_set with a message copied from guest memory
  (func (export "fail") (result i32)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.const 23)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const 23)))
        (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u offset=1024 (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $error_set (local.get $h))
    (i32.const 1))

  (func (export "fail_then_clear") (result i32)
    (call $error_set (call $alloc (i64.const 3)))
    (call $error_set (i64.const 0))
    (i32.const 0))

  (func (export "nothing") (result i32) (i32.const 0))

  (func (export "empty") (result i32)
    (call $output_set (call $alloc (i64.const 0)) (i64.const 0))
    (i32.const 0))

  (func (export "output_then_free") (result i32)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 4)))
    (call $output_set (local.get $h) (i64.const 4))
    (call $free (local.get $h))
    (i32.const 0))

  ;; freeing the input block is a no-op: the input stays readable
  (func (export "free_input") (result i32)
    (call $free (call $input_offset))
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0))

  ;; ---- faults (all with an empty input unless noted) ----
  (func (export "load_u64_past_end") (result i32)
    (drop (call $load_u64 (i64.add (call $alloc (i64.const 12)) (i64.const 8))))
    (i32.const 0))
  (func (export "load_u8_unknown") (result i32)
    (drop (call $load_u8 (i64.const 0x12345)))
    (i32.const 0))
  (func (export "load_u64_huge") (result i32)
    (drop (call $alloc (i64.const 8)))
    (drop (call $load_u64 (i64.const -4)))
    (i32.const 0))
  (func (export "store_u64_freed") (result i32)
    (local $a i64)
    (local.set $a (call $alloc (i64.const 8)))
    (drop (call $alloc (i64.const 8)))
    (call $free (local.get $a))
    (call $store_u64 (local.get $a) (i64.const 1))
    (i32.const 0))
  (func (export "store_u64_into_next") (result i32)
    (local $a i64)
    (local.set $a (call $alloc (i64.const 4)))
    (drop (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $a) (i64.const 1))
    (i32.const 0))
  (func (export "store_u8_zero") (result i32)
    (call $store_u8 (i64.const 0) (i32.const 1))
    (i32.const 0))
  (func (export "load_cached_then_freed") (result i32)
    (local $a i64)
    (local.set $a (call $alloc (i64.const 8)))
    (drop (call $alloc (i64.const 8)))
    (drop (call $load_u64 (local.get $a)))
    (call $free (local.get $a))
    (drop (call $load_u64 (local.get $a)))
    (i32.const 0))
  (func (export "store_cached_then_freed_last") (result i32)
    (local $a i64)
    (local.set $a (call $alloc (i64.const 8)))
    (call $store_u8 (local.get $a) (i32.const 1))
    (call $free (local.get $a))
    (call $store_u8 (local.get $a) (i32.const 1))
    (i32.const 0))
  (func (export "input_load_u8_oob") (result i32)
    (drop (call $input_load_u8 (call $input_length)))
    (i32.const 0))
  (func (export "input_load_u64_oob") (result i32)
    (drop (call $input_load_u64 (i64.sub (call $input_length) (i64.const 7))))
    (i32.const 0))
  (func (export "output_set_unknown") (result i32)
    (call $output_set (i64.const 0x40) (i64.const 1))
    (i32.const 0))
  (func (export "output_set_interior") (result i32)
    (call $output_set (i64.add (call $alloc (i64.const 16)) (i64.const 8)) (i64.const 1))
    (i32.const 0))
  (func (export "output_set_too_long") (result i32)
    (call $output_set (call $alloc (i64.const 4)) (i64.const 5))
    (i32.const 0))
  (func (export "output_set_zero_handle") (result i32)
    (call $output_set (i64.const 0) (i64.const 3))
    (i32.const 0))
  (func (export "error_set_unknown") (result i32)
    (call $error_set (i64.const 0x99))
    (i32.const 0))
  (func (export "error_set_freed") (result i32)
    (local $a i64)
    (local.set $a (call $alloc (i64.const 8)))
    (drop (call $alloc (i64.const 8)))
    (call $free (local.get $a))
    (call $error_set (local.get $a))
    (i32.const 0))

  ;; ---- lengths and allocation ----
  ;; [length(0), length(0x12345), alloc(0), h, length(h), length_unsafe(h), length(h) after free,
  ;;  length_unsafe(h) after a second free and free(0) and free(0x12345), length(h+1) of an interior address]
  (func (export "lengths") (result i32)
    (local $h i64)
    (call $put (i32.const 0) (call $length (i64.const 0)))
    (call $put (i32.const 1) (call $length (i64.const 0x12345)))
    (call $put (i32.const 2) (call $alloc (i64.const 0)))
    (local.set $h (call $alloc (i64.const 5)))
    (call $put (i32.const 3) (local.get $h))
    (call $put (i32.const 4) (call $length (local.get $h)))
    (call $put (i32.const 5) (call $length_unsafe (local.get $h)))
    (call $put (i32.const 8) (call $length (i64.add (local.get $h) (i64.const 1))))
    (call $free (local.get $h))
    (call $put (i32.const 6) (call $length (local.get $h)))
    (call $free (local.get $h))
    (call $free (i64.const 0))
    (call $free (i64.const 0x12345))
    (call $put (i32.const 7) (call $length_unsafe (local.get $h)))
    (call $emit (i32.const 9)))

  ;; [a, b, c, d, e, length(d), f, g, length(b2)]: a=alloc(10) b=alloc(20) free(b) c=alloc(20) (= b)
  ;; free(a) (dead, not last) free(c) (pops c and a) d=alloc(1) (= a) e=alloc(1000)
  ;; then b2=alloc(8) f=alloc(8) free(b2) (dead in the middle) g=alloc(8) (not b2)
  (func (export "reuse") (result i32)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64) (local $b2 i64)
    (local.set $a (call $alloc (i64.const 10)))
    (local.set $b (call $alloc (i64.const 20)))
    (call $free (local.get $b))
    (local.set $c (call $alloc (i64.const 20)))
    (call $free (local.get $a))
    (call $free (local.get $c))
    (local.set $d (call $alloc (i64.const 1)))
    (call $put (i32.const 0) (local.get $a))
    (call $put (i32.const 1) (local.get $b))
    (call $put (i32.const 2) (local.get $c))
    (call $put (i32.const 3) (local.get $d))
    (call $put (i32.const 4) (call $alloc (i64.const 1000)))
    (call $put (i32.const 5) (call $length (local.get $d)))
    (local.set $b2 (call $alloc (i64.const 8)))
    (call $put (i32.const 6) (call $alloc (i64.const 8)))
    (call $free (local.get $b2))
    (call $put (i32.const 7) (call $alloc (i64.const 8)))
    (call $put (i32.const 8) (call $length (local.get $b2)))
    (call $emit (i32.const 9)))

  ;; a fresh block is zeroed even where an earlier (freed) block wrote: [load_u64(b)]
  (func (export "zeroed") (result i32)
    (local $a i64) (local $b i64)
    (local.set $a (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $a) (i64.const -1))
    (call $free (local.get $a))
    (local.set $b (call $alloc (i64.const 8)))
    (call $put (i32.const 0) (i64.sub (local.get $b) (local.get $a)))
    (call $put (i32.const 1) (call $load_u64 (local.get $b)))
    (call $emit (i32.const 2)))

  ;; input: n (u64). [alloc(n), alloc(8)]
  (func (export "alloc_n") (result i32)
    (call $put (i32.const 0) (call $alloc (call $input_load_u64 (i64.const 0))))
    (call $put (i32.const 1) (call $alloc (i64.const 8)))
    (call $emit (i32.const 2)))

  ;; input: size (u64). Allocates size-byte blocks until alloc returns 0, then frees the last one
  ;; (making room for the output); output [blocks allocated]
  (func (export "fill") (result i32)
    (local $size i64) (local $n i64) (local $h i64) (local $last i64)
    (local.set $size (call $input_load_u64 (i64.const 0)))
    (block $full
      (loop $l
        (local.set $h (call $alloc (local.get $size)))
        (br_if $full (i64.eqz (local.get $h)))
        (local.set $last (local.get $h))
        (local.set $n (i64.add (local.get $n) (i64.const 1)))
        (br $l)))
    (if (i64.ne (local.get $last) (i64.const 0)) (then (call $free (local.get $last))))
    (call $put (i32.const 0) (local.get $n))
    (call $emit (i32.const 1)))

  ;; many blocks: input n (u64); allocates n 1..8-byte blocks, stores into each, frees every other
  ;; one, then checks lengths and loads in a second pass; output [sum of loads, sum of lengths]
  (func (export "many") (result i32)
    (local $n i64) (local $i i64) (local $h i64) (local $sum i64) (local $lens i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $h (call $alloc (i64.add (i64.rem_u (local.get $i) (i64.const 8)) (i64.const 1))))
        (call $store_u8 (local.get $h) (i32.wrap_i64 (local.get $i)))
        (i64.store offset=65536 (i32.wrap_i64 (i64.shl (local.get $i) (i64.const 3))) (local.get $h))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.set $i (i64.const 0))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $free (i64.load offset=65536 (i32.wrap_i64 (i64.shl (local.get $i) (i64.const 3)))))
        (local.set $i (i64.add (local.get $i) (i64.const 2)))
        (br $l)))
    (local.set $i (i64.const 1))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $h (i64.load offset=65536 (i32.wrap_i64 (i64.shl (local.get $i) (i64.const 3)))))
        (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $load_u8 (local.get $h)))))
        (local.set $lens (i64.add (local.get $lens) (call $length (local.get $h))))
        (local.set $i (i64.add (local.get $i) (i64.const 2)))
        (br $l)))
    (call $put (i32.const 0) (local.get $sum))
    (call $put (i32.const 1) (local.get $lens))
    (call $emit (i32.const 2)))

  ;; keeps nothing: allocates two 100-byte blocks and an 8-byte block and outputs the latter's handle
  (func (export "keep") (result i32)
    (local $h i64)
    (drop (call $alloc (i64.const 100)))
    (drop (call $alloc (i64.const 100)))
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (i64.const 0x1122334455667788))
    (call $put (i32.const 0) (local.get $h))
    (call $emit (i32.const 1)))
  ;; input: a handle. [length(h)]
  (func (export "length_of") (result i32)
    (call $put (i32.const 0) (call $length (call $input_load_u64 (i64.const 0))))
    (call $emit (i32.const 1)))
  ;; input: a handle. load_u64(h)
  (func (export "load_of") (result i32)
    (call $put (i32.const 0) (call $load_u64 (call $input_load_u64 (i64.const 0))))
    (call $emit (i32.const 1)))

  ;; host functions: the guest holds a block in its store cache, the host allocates and reads
  ;; blocks, and the guest copies the host's block byte by byte into a new one
  (func $via_host (param $which i32) (result i32)
    (local $scratch i64) (local $r i64) (local $n i64) (local $h i64) (local $i i64)
    (local.set $scratch (call $alloc (i64.const 8)))
    (call $store_u8 (local.get $scratch) (i32.const 1))
    (local.set $r
      (if (result i64) (local.get $which)
        (then (call $upper_caller (call $input_offset)))
        (else (call $upper (call $input_offset)))))
    (call $store_u8 (local.get $scratch) (i32.const 2))
    (local.set $n (call $length (local.get $r)))
    (local.set $h (call $alloc (local.get $n)))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $load_u8 (i64.add (local.get $r) (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (call $output_set (local.get $h) (local.get $n))
    (i32.const 0))
  (func (export "host") (result i32) (call $via_host (i32.const 0)))
  (func (export "host_caller") (result i32) (call $via_host (i32.const 1)))
)
