;; A small stack-machine interpreter: bytecode and variables in the heap
;; memory, the operand stack in a memory of its own (1 page, max 1).
;; Program: for i in 0..1000 { v[i % 64] = v[i % 64] + i * 3 } repeated.
;; Ops: 0 halt, 1 push imm32, 2 load var[imm], 3 store var[imm], 4 add,
;; 5 mul, 6 dup, 7 jump-if-nonzero imm, 8 sub, 9 rem, 10 loadi (var[pop]),
;; 11 storei (var[pop] = pop).
(module
  (memory $heap 2)
  (memory $stack 1 1)
  (data (memory $heap) (i32.const 0)
    ;; 0: push 0; store 0          (i = 0)
    "\01\00\00\00\00" "\03\00\00\00\00"
    ;; 10: loop: load 0; push 64; rem; dup; loadi; load 0; push 3; mul; add;
    "\02\00\00\00\00" "\01\40\00\00\00" "\09\00\00\00\00" "\06\00\00\00\00" "\0a\00\00\00\00"
    "\02\00\00\00\00" "\01\03\00\00\00" "\05\00\00\00\00" "\04\00\00\00\00"
    ;; 55: swap-less store: storei expects [addr value] -> we pushed addr first
    "\0b\00\00\00\00"
    ;; 60: i = i + 1
    "\02\00\00\00\00" "\01\01\00\00\00" "\04\00\00\00\00" "\03\00\00\00\00"
    ;; 80: if 1000 - i != 0 goto 10
    "\01\e8\03\00\00" "\02\00\00\00\00" "\08\00\00\00\00" "\07\0a\00\00\00"
    ;; 100: halt
    "\00\00\00\00\00")
  (func $exec (result i32)
    (local $pc i32) (local $sp i32) (local $op i32) (local $imm i32) (local $a i32) (local $b i32) (local $steps i32)
    (block $halt
      (loop $next
        (local.set $op (i32.load8_u $heap (local.get $pc)))
        (local.set $imm (i32.load $heap offset=1 (local.get $pc)))
        (local.set $pc (i32.add (local.get $pc) (i32.const 5)))
        (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
        (block $b11 (block $b10 (block $b9 (block $b8 (block $b7 (block $b6 (block $b5 (block $b4 (block $b3 (block $b2 (block $b1
          (br_table $halt $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 $b10 $b11 $halt (local.get $op)))
          ;; 1 push
          (local.set $sp (i32.add (local.get $sp) (i32.const 4)))
          (i32.store $stack (local.get $sp) (local.get $imm))
          (br $next))
          ;; 2 load var
          (local.set $sp (i32.add (local.get $sp) (i32.const 4)))
          (i32.store $stack (local.get $sp) (i32.load $heap offset=4096 (i32.shl (local.get $imm) (i32.const 2))))
          (br $next))
          ;; 3 store var
          (i32.store $heap offset=4096 (i32.shl (local.get $imm) (i32.const 2)) (i32.load $stack (local.get $sp)))
          (local.set $sp (i32.sub (local.get $sp) (i32.const 4)))
          (br $next))
          ;; 4 add
          (local.set $b (i32.load $stack (local.get $sp)))
          (local.set $sp (i32.sub (local.get $sp) (i32.const 4)))
          (i32.store $stack (local.get $sp) (i32.add (i32.load $stack (local.get $sp)) (local.get $b)))
          (br $next))
          ;; 5 mul
          (local.set $b (i32.load $stack (local.get $sp)))
          (local.set $sp (i32.sub (local.get $sp) (i32.const 4)))
          (i32.store $stack (local.get $sp) (i32.mul (i32.load $stack (local.get $sp)) (local.get $b)))
          (br $next))
          ;; 6 dup
          (local.set $a (i32.load $stack (local.get $sp)))
          (local.set $sp (i32.add (local.get $sp) (i32.const 4)))
          (i32.store $stack (local.get $sp) (local.get $a))
          (br $next))
          ;; 7 jump if nonzero
          (local.set $a (i32.load $stack (local.get $sp)))
          (local.set $sp (i32.sub (local.get $sp) (i32.const 4)))
          (if (local.get $a) (then (local.set $pc (local.get $imm))))
          (br $next))
          ;; 8 sub
          (local.set $b (i32.load $stack (local.get $sp)))
          (local.set $sp (i32.sub (local.get $sp) (i32.const 4)))
          (i32.store $stack (local.get $sp) (i32.sub (i32.load $stack (local.get $sp)) (local.get $b)))
          (br $next))
          ;; 9 rem
          (local.set $b (i32.load $stack (local.get $sp)))
          (local.set $sp (i32.sub (local.get $sp) (i32.const 4)))
          (i32.store $stack (local.get $sp) (i32.rem_u (i32.load $stack (local.get $sp)) (local.get $b)))
          (br $next))
          ;; 10 loadi
          (i32.store $stack (local.get $sp)
            (i32.load $heap offset=4352 (i32.shl (i32.load $stack (local.get $sp)) (i32.const 2))))
          (br $next))
        ;; 11 storei: [addr value]
        (local.set $b (i32.load $stack (local.get $sp)))
        (local.set $a (i32.load $stack (i32.sub (local.get $sp) (i32.const 4))))
        (local.set $sp (i32.sub (local.get $sp) (i32.const 8)))
        (i32.store $heap offset=4352 (i32.shl (local.get $a) (i32.const 2)) (local.get $b))
        (br $next)))
    (local.get $steps))
  (func (export "run") (param $iters i32) (result i64)
    (local $n i32) (local $acc i64) (local $i i32)
    (loop $outer
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (call $exec))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $n) (local.get $iters))))
    (loop $sum
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (i32.load $heap offset=4352 (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br_if $sum (i32.lt_u (local.get $i) (i32.const 256))))
    (local.get $acc)))
