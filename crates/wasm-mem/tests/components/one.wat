(component
  (core module $m
    (memory (export "memory") 1)
    (data (i32.const 16) "hello\00\00\00\00\00\00\00\00world")
    (data (i32.const 64) "\10\00\00\00\05\00\00\00")
    (func (export "greet") (result i32) i32.const 64))
  (core instance $i (instantiate $m))
  (alias core export $i "memory" (core memory $mem))
  (func (export "greet") (result string)
    (canon lift (core func $i "greet") (memory $mem)))
  (@custom "note" "kept as it is")
)
