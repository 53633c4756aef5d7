(component
  (core module $a
    (memory (export "mem") 2)
    (data (i32.const 0) "aaaa")
    (data (i32.const 4) "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00bb"))
  (core instance $ia (instantiate $a))
  (component $inner
    (core module $b
      (memory 1)
      (data (i32.const 1) "b")
      (data (i32.const 2) "b")
      (func (export "two") (result i32) (i32.load (i32.const 0)) (i32.load (i32.const 4)) i32.add))
    (core instance (instantiate $b))
    (@custom "inner" "custom inside the nested component"))
  (core module $c
    (import "a" "mem" (memory 1))
    (data (i32.const 100) "c")
    (data (i32.const 101) "c"))
  (core instance (instantiate $c (with "a" (instance $ia))))
  (core module $d
    (memory i64 1)
    (data (i64.const 8) "d")
    (data (i64.const 9) "d")
    (func (export "load") (param i64) (result i32) local.get 0 i32.load))
  (core module $e
    (memory $x 1)
    (memory $y 1)
    (data (memory $y) (i32.const 0) "e")
    (func (export "sum") (result i32)
      (i32.add (i32.load $x (i32.const 0)) (i32.load $y (i32.const 0)))))
  (core instance (instantiate $d))
  (core instance (instantiate $e))
)
