;; The Extism-compatible kernel of astrid-go: the memory a guest and the host exchange data in.
;;
;; Its memories are made by the Go side (kernel.New) and imported, so that a second instance of
;; this same module can share them (see "bulk copies" below):
;;   $mem   (memory 0, "memory"): block data. A handle is the offset of a block's first byte here.
;;          Offsets [0, 16) are never used, so no handle is 0.
;;   $idx   (memory 1, "index"): the kernel's state and its block index, which the guest can never
;;          reach (loads and stores only land in live blocks of $mem).
;;   $guest (memory 2, "guest"): the guest's own linear memory, for the bulk copies; only the copy
;;          instance has it ($has_guest = 1). The kernel instance, made before the guest, imports
;;          $mem in its place and never touches it.
;;
;; $idx layout (all little-endian; the Go side in kernel.go mirrors it):
;;     0  i64 load cache: start of the last block a load was validated in
;;     8  i64 load cache: its length (0: cache empty)
;;    16  i64 load cache: max(length - 7, 0), the number of valid 8-byte load offsets
;;    24  i64 store cache: start           32 i64 length        40 i64 max(length - 7, 0)
;;    48  i64 input block handle (0: none) 56 i64 input length  64 i64 max(input length - 7, 0)
;;    72  i64 top: where the next block starts (8-aligned, >= 16)
;;    80  i64 count: number of index entries
;;    88  i64 output handle                96 i64 output length 104 i64 output set (0/1)
;;   112  i64 error handle (0: none)
;;   120  i64 limit: the most pages $mem and $idx may hold together. The Go side writes it at every
;;          reset; nothing the guest calls writes it. Growing either memory past it fails as if
;;          the Store's memory limit had refused, so the kernel's memory is bounded by its share
;;          of the capsule's [limits] memory whatever the Store allows one memory.
;;   128  the index: one 16-byte entry per block, in address order (blocks are bump-allocated):
;;          +0 i64 start, +8 i32 length (>= 1), +12 i32 live (1) or freed (0)
;;
;; Freed blocks stay in the index as dead entries until they are at the end, when they are popped
;; and the top moves back. Validating an address is a binary search of the index, behind two
;; one-block caches (one for loads, one for stores, so a load/store copy loop between two blocks
;; stays O(1) per access). The host resets everything at the start of a call by rewriting the
;; state words (and writes them first in kernel.New: this module has no data segment, so that
;; instantiating it again never rewrites them); it never calls into this module.
;;
;; Faults call the imported astrid:kernel fault(code, a, b, c, d), which never returns (it traps
;; with a message built in Go). Codes:
;;   1 load_u8  2 load_u64  3 store_u8  4 store_u64      a=address b=size c=block start or 0 d=block length, -1 if freed
;;   5 input_load_u8  6 input_load_u64                   a=offset b=size c=input length
;;   7 output_set: not a live block                      a=handle b=length
;;   8 output_set: length exceeds block                  a=handle b=length c=block length
;;   9 error_set: not a live block                       a=handle
;;  10 astrid_kernel_read  11 astrid_kernel_write: the kernel range      a, b, c, d as for 1-4
;;  12 astrid_kernel_read  13 astrid_kernel_write: the guest range       a=guest offset b=size c=guest memory size
;;  14 astrid_kernel_read  15 astrid_kernel_write: no guest memory
(module $astrid_extism_kernel
  (import "astrid:kernel" "fault" (func $fault (param i32 i64 i64 i64 i64)))
  (import "astrid:kernel" "memory" (memory $mem 1))
  (import "astrid:kernel" "index" (memory $idx 1))
  (import "astrid:kernel" "guest" (memory $guest 0))
  (import "astrid:kernel" "copies" (table $copies 2 funcref))
  (import "astrid:kernel" "has_guest" (global $has_guest i32))

  (type $copy (func (param i64 i64 i64)))

  ;; ---------------------------------------------------------------------------------------------
  ;; index helpers

  (func $entry (param $i i32) (result i32)
    (i32.add (i32.const 128) (i32.shl (local.get $i) (i32.const 4))))

  ;; The index of the entry with the greatest start <= addr, or -1.
  (func $find (param $addr i64) (result i32)
    (local $lo i32) (local $hi i32) (local $mid i32)
    (local.set $hi (i32.wrap_i64 (i64.load $idx offset=80 (i32.const 0))))
    (block $done
      (loop $search
        (br_if $done (i32.ge_u (local.get $lo) (local.get $hi)))
        (local.set $mid (i32.shr_u (i32.add (local.get $lo) (local.get $hi)) (i32.const 1)))
        (if (i64.le_u (i64.load $idx (call $entry (local.get $mid))) (local.get $addr))
          (then (local.set $lo (i32.add (local.get $mid) (i32.const 1))))
          (else (local.set $hi (local.get $mid))))
        (br $search)))
    (i32.sub (local.get $lo) (i32.const 1)))

  ;; The entry address of the live block whose handle is h, or 0.
  (func $live_entry (param $h i64) (result i32)
    (local $i i32) (local $e i32)
    (if (i64.eqz (local.get $h)) (then (return (i32.const 0))))
    (local.set $i (call $find (local.get $h)))
    (if (i32.lt_s (local.get $i) (i32.const 0)) (then (return (i32.const 0))))
    (local.set $e (call $entry (local.get $i)))
    (if (i64.ne (i64.load $idx (local.get $e)) (local.get $h)) (then (return (i32.const 0))))
    (if (i32.eqz (i32.load $idx offset=12 (local.get $e))) (then (return (i32.const 0))))
    (local.get $e))

  ;; The entry address of the live block that holds [a, a+size), or a fault.
  (func $check (param $a i64) (param $size i64) (param $code i32) (result i32)
    (local $i i32) (local $e i32) (local $start i64) (local $len i64)
    (local.set $i (call $find (local.get $a)))
    (if (i32.lt_s (local.get $i) (i32.const 0))
      (then
        (call $fault (local.get $code) (local.get $a) (local.get $size) (i64.const 0) (i64.const 0))
        (unreachable)))
    (local.set $e (call $entry (local.get $i)))
    (local.set $start (i64.load $idx (local.get $e)))
    (local.set $len (i64.extend_i32_u (i32.load $idx offset=8 (local.get $e))))
    ;; a is past the end of the nearest block below it: in a gap, or above the top
    (if (i64.ge_u (i64.sub (local.get $a) (local.get $start)) (local.get $len))
      (then
        (call $fault (local.get $code) (local.get $a) (local.get $size) (i64.const 0) (i64.const 0))
        (unreachable)))
    (if (i32.eqz (i32.load $idx offset=12 (local.get $e)))
      (then
        (call $fault (local.get $code) (local.get $a) (local.get $size) (local.get $start) (i64.const -1))
        (unreachable)))
    (if (i64.gt_u (i64.add (i64.sub (local.get $a) (local.get $start)) (local.get $size)) (local.get $len))
      (then
        (call $fault (local.get $code) (local.get $a) (local.get $size) (local.get $start) (local.get $len))
        (unreachable)))
    (local.get $e))

  ;; Fill the cache at state offset $c (0: loads, 24: stores) with the block of entry e.
  (func $fill_cache (param $c i32) (param $e i32)
    (local $len i64)
    (local.set $len (i64.extend_i32_u (i32.load $idx offset=8 (local.get $e))))
    (i64.store $idx (local.get $c) (i64.load $idx (local.get $e)))
    (i64.store $idx offset=8 (local.get $c) (local.get $len))
    (i64.store $idx offset=16 (local.get $c)
      (select (i64.sub (local.get $len) (i64.const 7)) (i64.const 0)
        (i64.ge_u (local.get $len) (i64.const 8)))))

  (func $miss_load (param $a i64) (param $size i64) (param $code i32)
    (call $fill_cache (i32.const 0) (call $check (local.get $a) (local.get $size) (local.get $code))))

  (func $miss_store (param $a i64) (param $size i64) (param $code i32)
    (call $fill_cache (i32.const 24) (call $check (local.get $a) (local.get $size) (local.get $code))))

  ;; ---------------------------------------------------------------------------------------------
  ;; allocation

  ;; Whether $mem and $idx may grow by $pages more pages together: the kernel's limit (offset 120).
  (func $room (param $pages i64) (result i32)
    (i64.le_u
      (i64.add (local.get $pages)
        (i64.add (i64.extend_i32_u (memory.size $mem)) (i64.extend_i32_u (memory.size $idx))))
      (i64.load $idx offset=120 (i32.const 0))))

  ;; A new block of n bytes (not zeroed), or 0 if n is 0 or memory cannot grow.
  (func $alloc_raw (param $n i64) (result i64)
    (local $start i64) (local $end i64) (local $count i32) (local $e i32) (local $have i64) (local $pages i64)
    (if (i64.eqz (local.get $n)) (then (return (i64.const 0))))
    (if (i64.gt_u (local.get $n) (i64.const 0xffffffff)) (then (return (i64.const 0))))
    (local.set $start (i64.load $idx offset=72 (i32.const 0)))
    (local.set $end (i64.add (local.get $start) (local.get $n)))
    (if (i64.gt_u (local.get $end) (i64.const 0x100000000)) (then (return (i64.const 0))))
    ;; room for one more index entry
    (local.set $count (i32.wrap_i64 (i64.load $idx offset=80 (i32.const 0))))
    (local.set $e (call $entry (local.get $count)))
    (if (i32.gt_u (i32.add (local.get $e) (i32.const 16)) (i32.shl (memory.size $idx) (i32.const 16)))
      (then
        (if (i32.eqz (call $room (i64.const 1))) (then (return (i64.const 0))))
        (if (i32.eq (memory.grow $idx (i32.const 1)) (i32.const -1))
          (then (return (i64.const 0))))))
    ;; room for the data
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size $mem)) (i64.const 16)))
    (if (i64.gt_u (local.get $end) (local.get $have))
      (then
        (local.set $pages
          (i64.shr_u (i64.add (i64.sub (local.get $end) (local.get $have)) (i64.const 0xffff)) (i64.const 16)))
        (if (i32.eqz (call $room (local.get $pages))) (then (return (i64.const 0))))
        (if (i32.eq (memory.grow $mem (i32.wrap_i64 (local.get $pages))) (i32.const -1))
          (then (return (i64.const 0))))))
    (i64.store $idx (local.get $e) (local.get $start))
    (i32.store $idx offset=8 (local.get $e) (i32.wrap_i64 (local.get $n)))
    (i32.store $idx offset=12 (local.get $e) (i32.const 1))
    (i64.store $idx offset=80 (i32.const 0) (i64.extend_i32_u (i32.add (local.get $count) (i32.const 1))))
    (i64.store $idx offset=72 (i32.const 0)
      (i64.and (i64.add (local.get $end) (i64.const 7)) (i64.const -8)))
    (local.get $start))

  (func $alloc (export "alloc") (param $n i64) (result i64)
    (local $h i64)
    (local.set $h (call $alloc_raw (local.get $n)))
    (if (i64.ne (local.get $h) (i64.const 0))
      (then (memory.fill $mem (i32.wrap_i64 (local.get $h)) (i32.const 0) (i32.wrap_i64 (local.get $n)))))
    (local.get $h))

  (func $free (export "free") (param $h i64)
    (local $e i32) (local $count i32)
    (local.set $e (call $live_entry (local.get $h)))
    (if (i32.eqz (local.get $e)) (then (return)))
    ;; the input block lives for the whole call
    (if (i64.eq (local.get $h) (i64.load $idx offset=48 (i32.const 0))) (then (return)))
    (i32.store $idx offset=12 (local.get $e) (i32.const 0))
    (if (i64.eq (local.get $h) (i64.load $idx (i32.const 0)))
      (then
        (i64.store $idx offset=8 (i32.const 0) (i64.const 0))
        (i64.store $idx offset=16 (i32.const 0) (i64.const 0))))
    (if (i64.eq (local.get $h) (i64.load $idx offset=24 (i32.const 0)))
      (then
        (i64.store $idx offset=32 (i32.const 0) (i64.const 0))
        (i64.store $idx offset=40 (i32.const 0) (i64.const 0))))
    ;; pop dead entries at the end and move the top back
    (local.set $count (i32.wrap_i64 (i64.load $idx offset=80 (i32.const 0))))
    (if (i32.ne (call $entry (i32.sub (local.get $count) (i32.const 1))) (local.get $e))
      (then (return)))
    (block $done
      (loop $pop
        (br_if $done (i32.eqz (local.get $count)))
        (br_if $done (i32.load $idx offset=12 (call $entry (i32.sub (local.get $count) (i32.const 1)))))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $pop)))
    (i64.store $idx offset=80 (i32.const 0) (i64.extend_i32_u (local.get $count)))
    (if (i32.eqz (local.get $count))
      (then (i64.store $idx offset=72 (i32.const 0) (i64.const 16)))
      (else
        (local.set $e (call $entry (i32.sub (local.get $count) (i32.const 1))))
        (i64.store $idx offset=72 (i32.const 0)
          (i64.and
            (i64.add
              (i64.add (i64.load $idx (local.get $e)) (i64.extend_i32_u (i32.load $idx offset=8 (local.get $e))))
              (i64.const 7))
            (i64.const -8))))))

  (func $length (export "length") (export "length_unsafe") (param $h i64) (result i64)
    (local $e i32)
    (local.set $e (call $live_entry (local.get $h)))
    (if (result i64) (i32.eqz (local.get $e))
      (then (i64.const 0))
      (else (i64.extend_i32_u (i32.load $idx offset=8 (local.get $e))))))

  ;; ---------------------------------------------------------------------------------------------
  ;; loads and stores: the hot paths. (a - cache start) <u cache count covers a >= start too.

  (func $load_u8 (export "load_u8") (param $a i64) (result i32)
    (if (i64.ge_u (i64.sub (local.get $a) (i64.load $idx (i32.const 0))) (i64.load $idx offset=8 (i32.const 0)))
      (then (call $miss_load (local.get $a) (i64.const 1) (i32.const 1))))
    (i32.load8_u $mem (i32.wrap_i64 (local.get $a))))

  (func $load_u64 (export "load_u64") (param $a i64) (result i64)
    (if (i64.ge_u (i64.sub (local.get $a) (i64.load $idx (i32.const 0))) (i64.load $idx offset=16 (i32.const 0)))
      (then (call $miss_load (local.get $a) (i64.const 8) (i32.const 2))))
    (i64.load $mem (i32.wrap_i64 (local.get $a))))

  (func $store_u8 (export "store_u8") (param $a i64) (param $v i32)
    (if (i64.ge_u (i64.sub (local.get $a) (i64.load $idx offset=24 (i32.const 0))) (i64.load $idx offset=32 (i32.const 0)))
      (then (call $miss_store (local.get $a) (i64.const 1) (i32.const 3))))
    (i32.store8 $mem (i32.wrap_i64 (local.get $a)) (local.get $v)))

  (func $store_u64 (export "store_u64") (param $a i64) (param $v i64)
    (if (i64.ge_u (i64.sub (local.get $a) (i64.load $idx offset=24 (i32.const 0))) (i64.load $idx offset=40 (i32.const 0)))
      (then (call $miss_store (local.get $a) (i64.const 8) (i32.const 4))))
    (i64.store $mem (i32.wrap_i64 (local.get $a)) (local.get $v)))

  ;; ---------------------------------------------------------------------------------------------
  ;; input, output, error

  (func $input_length (export "input_length") (result i64)
    (i64.load $idx offset=56 (i32.const 0)))

  (func $input_offset (export "input_offset") (result i64)
    (i64.load $idx offset=48 (i32.const 0)))

  (func $input_load_u8 (export "input_load_u8") (param $i i64) (result i32)
    (if (i64.ge_u (local.get $i) (i64.load $idx offset=56 (i32.const 0)))
      (then
        (call $fault (i32.const 5) (local.get $i) (i64.const 1) (i64.load $idx offset=56 (i32.const 0)) (i64.const 0))
        (unreachable)))
    (i32.load8_u $mem (i32.wrap_i64 (i64.add (i64.load $idx offset=48 (i32.const 0)) (local.get $i)))))

  (func $input_load_u64 (export "input_load_u64") (param $i i64) (result i64)
    (if (i64.ge_u (local.get $i) (i64.load $idx offset=64 (i32.const 0)))
      (then
        (call $fault (i32.const 6) (local.get $i) (i64.const 8) (i64.load $idx offset=56 (i32.const 0)) (i64.const 0))
        (unreachable)))
    (i64.load $mem (i32.wrap_i64 (i64.add (i64.load $idx offset=48 (i32.const 0)) (local.get $i)))))

  (func $output_set (export "output_set") (param $h i64) (param $n i64)
    (local $e i32) (local $len i64)
    ;; PDKs write an empty output as output_set(alloc(0), 0) = output_set(0, 0)
    (if (i64.eqz (i64.or (local.get $h) (local.get $n)))
      (then
        (i64.store $idx offset=88 (i32.const 0) (i64.const 0))
        (i64.store $idx offset=96 (i32.const 0) (i64.const 0))
        (i64.store $idx offset=104 (i32.const 0) (i64.const 1))
        (return)))
    (local.set $e (call $live_entry (local.get $h)))
    (if (i32.eqz (local.get $e))
      (then
        (call $fault (i32.const 7) (local.get $h) (local.get $n) (i64.const 0) (i64.const 0))
        (unreachable)))
    (local.set $len (i64.extend_i32_u (i32.load $idx offset=8 (local.get $e))))
    (if (i64.gt_u (local.get $n) (local.get $len))
      (then
        (call $fault (i32.const 8) (local.get $h) (local.get $n) (local.get $len) (i64.const 0))
        (unreachable)))
    (i64.store $idx offset=88 (i32.const 0) (local.get $h))
    (i64.store $idx offset=96 (i32.const 0) (local.get $n))
    (i64.store $idx offset=104 (i32.const 0) (i64.const 1)))

  (func $error_set (export "error_set") (param $h i64)
    (if (i64.ne (local.get $h) (i64.const 0))
      (then
        (if (i32.eqz (call $live_entry (local.get $h)))
          (then
            (call $fault (i32.const 9) (local.get $h) (i64.const 0) (i64.const 0) (i64.const 0))
            (unreachable)))))
    (i64.store $idx offset=112 (i32.const 0) (local.get $h)))
;; ---------------------------------------------------------------------------------------------
  ;; bulk copies: astrid_kernel_read(addr, dst, n) and astrid_kernel_write(addr, src, n), an Astrid
  ;; addition to the ABI. The guest's imports are kernel_read and kernel_write of the kernel
  ;; instance, which call through $copies: entries 0 and 1 are copy_out and copy_in of a second
  ;; instance of this module that imports the guest's memory as $guest (kernel.BindGuest), made once
  ;; the guest exists; until then (a start function), and for a guest with no memory to bind, they
  ;; are the kernel instance's own, which fault. A copy stays in WebAssembly: memory.copy between
  ;; two memories of the Store, after the same checks as an 8-byte load or store.

  (func $kernel_read (export "kernel_read") (param $a i64) (param $p i64) (param $n i64)
    (call_indirect $copies (type $copy) (local.get $a) (local.get $p) (local.get $n) (i32.const 0)))

  (func $kernel_write (export "kernel_write") (param $a i64) (param $p i64) (param $n i64)
    (call_indirect $copies (type $copy) (local.get $a) (local.get $p) (local.get $n) (i32.const 1)))

  ;; Fault unless [p, p+n) lies inside the guest's memory (for any p and n: no overflow).
  (func $guest_span (param $p i64) (param $n i64) (param $code i32)
    (local $size i64)
    (if (i32.eqz (global.get $has_guest))
      (then
        (call $fault (i32.add (local.get $code) (i32.const 2)) (local.get $p) (local.get $n) (i64.const 0) (i64.const 0))
        (unreachable)))
    (local.set $size (i64.shl (i64.extend_i32_u (memory.size $guest)) (i64.const 16)))
    (if (i32.or (i64.gt_u (local.get $p) (local.get $size))
                (i64.gt_u (local.get $n) (i64.sub (local.get $size) (local.get $p))))
      (then
        (call $fault (local.get $code) (local.get $p) (local.get $n) (local.get $size) (i64.const 0))
        (unreachable))))

  ;; Fault unless [a, a+n) lies inside one live block; $c is the cache to try and fill (0 loads,
  ;; 24 stores). n < 2^32 here (the guest range was checked first), so $check cannot overflow;
  ;; a larger n faults anyway.
  (func $kernel_span (param $a i64) (param $n i64) (param $c i32) (param $code i32)
    (local $off i64) (local $len i64)
    (local.set $off (i64.sub (local.get $a) (i64.load $idx (local.get $c))))
    (local.set $len (i64.load $idx offset=8 (local.get $c)))
    (if (i32.and (i64.lt_u (local.get $off) (local.get $len))
                 (i64.le_u (local.get $n) (i64.sub (local.get $len) (local.get $off))))
      (then (return)))
    (if (i64.gt_u (local.get $n) (i64.const 0xffffffff))
      (then
        (call $fault (local.get $code) (local.get $a) (local.get $n) (i64.const 0) (i64.const 0))
        (unreachable)))
    (call $fill_cache (local.get $c) (call $check (local.get $a) (local.get $n) (local.get $code))))

  ;; kernel → guest. n = 0 copies nothing and checks only the guest range.
  (func $copy_out (export "copy_out") (param $a i64) (param $p i64) (param $n i64)
    (call $guest_span (local.get $p) (local.get $n) (i32.const 12))
    (if (i64.eqz (local.get $n)) (then (return)))
    (call $kernel_span (local.get $a) (local.get $n) (i32.const 0) (i32.const 10))
    (memory.copy $guest $mem
      (i32.wrap_i64 (local.get $p)) (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $n))))

  ;; guest → kernel.
  (func $copy_in (export "copy_in") (param $a i64) (param $p i64) (param $n i64)
    (call $guest_span (local.get $p) (local.get $n) (i32.const 13))
    (if (i64.eqz (local.get $n)) (then (return)))
    (call $kernel_span (local.get $a) (local.get $n) (i32.const 24) (i32.const 11))
    (memory.copy $mem $guest
      (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $p)) (i32.wrap_i64 (local.get $n))))
)
