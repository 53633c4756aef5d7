// A tiny JS component for the components benchmark of wasm-mem.
export function greet(name) {
  return `Hello, ${name}!`;
}
