;; Hashing: CRC-32 of a buffer in the data memory, with the 256-entry table
;; in a small fixed memory of its own.
(module
  (memory $data 8)
  (memory $table 1 1)
  (func $init
    (local $i i32) (local $c i32) (local $k i32)
    (loop $t
      (local.set $c (local.get $i))
      (local.set $k (i32.const 0))
      (loop $bits
        (local.set $c
          (if (result i32) (i32.and (local.get $c) (i32.const 1))
            (then (i32.xor (i32.shr_u (local.get $c) (i32.const 1)) (i32.const 0xedb88320)))
            (else (i32.shr_u (local.get $c) (i32.const 1)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $bits (i32.lt_u (local.get $k) (i32.const 8))))
      (i32.store $table (i32.shl (local.get $i) (i32.const 2)) (local.get $c))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $t (i32.lt_u (local.get $i) (i32.const 256))))
    (local.set $i (i32.const 0))
    (loop $d
      (i32.store $data (local.get $i) (i32.mul (local.get $i) (i32.const 2654435761)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br_if $d (i32.lt_u (local.get $i) (i32.const 524288)))))
  (func (export "run") (param $iters i32) (result i64)
    (local $i i32) (local $n i32) (local $crc i32) (local $acc i64)
    (call $init)
    (loop $outer
      (local.set $crc (i32.const -1))
      (local.set $i (i32.const 0))
      (loop $l
        (local.set $crc
          (i32.xor
            (i32.load $table
              (i32.shl
                (i32.and (i32.xor (local.get $crc) (i32.load8_u $data (local.get $i))) (i32.const 255))
                (i32.const 2)))
            (i32.shr_u (local.get $crc) (i32.const 8))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 524288))))
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $crc))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $n) (local.get $iters))))
    (local.get $acc)))
