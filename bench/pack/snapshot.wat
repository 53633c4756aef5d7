;; A small program for a Wizer snapshot: `wizer.initialize` builds the kind
;; of heap a real program has at start-up (a sparse hash table of 16-byte
;; entries, a dense lookup table, a string area with short zero gaps), so the
;; snapshot has thousands of data segments separated by zero runs of every
;; length. Used by the pack benchmark and tests (wizer from npm
;; `@bytecodealliance/wizer`).
(module
  (memory (export "memory") 96)
  (func $hash (param $x i32) (result i32)
    (local.set $x (i32.mul (local.get $x) (i32.const 0x9e3779b1)))
    (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 15))))
  (func (export "wizer.initialize")
    (local $i i32) (local $slot i32) (local $h i32)
    ;; Sparse hash table at 64 KiB: 4096 entries in 65536 slots of 16 bytes.
    (loop $fill
      (local.set $h (call $hash (local.get $i)))
      (local.set $slot (i32.and (local.get $h) (i32.const 0xffff)))
      (i32.store (i32.add (i32.const 0x10000) (i32.shl (local.get $slot) (i32.const 4)))
        (i32.or (local.get $h) (i32.const 1)))
      (i32.store16 (i32.add (i32.const 0x10008) (i32.shl (local.get $slot) (i32.const 4)))
        (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 4096))))
    ;; Dense table at 2 MiB: 8192 words, about a quarter of them zero.
    (local.set $i (i32.const 0))
    (loop $dense
      (local.set $h (call $hash (i32.add (local.get $i) (i32.const 77777))))
      (i32.store (i32.add (i32.const 0x200000) (i32.shl (local.get $i) (i32.const 2)))
        (select (i32.const 0) (local.get $h) (i32.eqz (i32.and (local.get $h) (i32.const 3)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $dense (i32.lt_u (local.get $i) (i32.const 8192))))
    ;; Strings at 3 MiB: 3000 strings of 3..18 bytes, 1..40 zero bytes apart.
    (local.set $i (i32.const 0))
    (local.set $slot (i32.const 0x300000))
    (loop $strings
      (local.set $h (call $hash (i32.add (local.get $i) (i32.const 999))))
      (memory.fill (local.get $slot)
        (i32.add (i32.const 97) (i32.and (local.get $h) (i32.const 15)))
        (i32.add (i32.const 3) (i32.and (i32.shr_u (local.get $h) (i32.const 4)) (i32.const 15))))
      (local.set $slot (i32.add (local.get $slot)
        (i32.add (i32.const 4)
          (i32.add (i32.and (i32.shr_u (local.get $h) (i32.const 4)) (i32.const 15))
                   (i32.rem_u (i32.shr_u (local.get $h) (i32.const 8)) (i32.const 40))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $strings (i32.lt_u (local.get $i) (i32.const 3000)))))
  (func (export "lookup") (param $slot i32) (result i32)
    (i32.load (i32.add (i32.const 0x10000) (i32.shl (local.get $slot) (i32.const 4))))))
