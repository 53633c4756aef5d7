;; A small module laid out the way wasm-ld lays out a C or Rust program:
;; read-only data at 1024, a stack of 64 KiB above the data (growing down
;; from __stack_pointer), and the heap from __heap_base. Used by the README's
;; first command:  wasm-mem inspect examples/app.wat --svg map.svg
(module
  (memory $memory (export "memory") 3 256)
  (global $__stack_pointer (mut i32) (i32.const 70800))
  (global $__data_end i32 (i32.const 5264))
  (global $__heap_base i32 (i32.const 70800))
  (export "__data_end" (global $__data_end))
  (export "__heap_base" (global $__heap_base))

  ;; .rodata: a greeting and a lookup table with a long run of zeros.
  (data $.rodata (i32.const 1024) "Hello from wasm-mem!\00\00\00\00")
  (data $.table (i32.const 1056)
    "\01\02\03\04\05\06\07\08"
    "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00"
    "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00"
    "\ff\ee\dd\cc")
  ;; .data: initialised mutable state, mostly zeros (a static buffer).
  (data $.data (i32.const 4096) "\2a\00\00\00" "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00" "wasm")
  ;; .bss is not in the data section: memory starts zeroed.

  ;; bump allocator: grows the memory when the heap runs out.
  (global $heap_top (mut i32) (i32.const 70800))
  (func $alloc (export "alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap_top))
    (global.set $heap_top (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $heap_top) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
          (then unreachable))))
    (local.get $ptr))

  (func (export "greeting_byte") (param $i i32) (result i32)
    (i32.load8_u offset=1024 (local.get $i)))

  (func (export "push") (param $v i32)
    (global.set $__stack_pointer (i32.sub (global.get $__stack_pointer) (i32.const 4)))
    (i32.store (global.get $__stack_pointer) (local.get $v)))
)
