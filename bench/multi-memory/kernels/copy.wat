;; Copy loop: a source buffer in one memory, copied word by word into a
;; second memory and back into a third, then summed. Three memories, no max
;; on the big ones (the usual heap shape).
(module
  (memory $src 16)
  (memory $dst 16)
  (memory $tmp 16)
  (func $init
    (local $i i32)
    (loop $l
      (i64.store $src (local.get $i) (i64.mul (i64.extend_i32_u (local.get $i)) (i64.const 0x9e3779b97f4a7c15)))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1048576)))))
  (func (export "run") (param $iters i32) (result i64)
    (local $i i32) (local $n i32) (local $sum i64)
    (call $init)
    (loop $outer
      (local.set $i (i32.const 0))
      (loop $l
        (i64.store $dst (local.get $i) (i64.load $src (local.get $i)))
        (i64.store $tmp (local.get $i) (i64.add (i64.load $dst (local.get $i)) (i64.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 1048576))))
      (local.set $i (i32.const 0))
      (loop $l
        (local.set $sum (i64.add (local.get $sum) (i64.load $tmp (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 64)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 1048576))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $n) (local.get $iters))))
    (local.get $sum)))
