// Package manifest parses and validates Capsule.toml, the manifest of a
// capsule.
//
// The schema is upstream astrid-capsule v0.5 ([package], [[component]],
// [capabilities], [env], [[interceptor]], [[topic]], [imports], [exports],
// [[context_file]], [[command]], [[mcp_server]], [[skill]], [[uplink]])
// plus this runtime's additions: [limits], [restart] and
// capabilities.process_network.
//
// Validation follows upstream's load-time rules and goes further where the
// design asks for it (ipc_subscribe patterns are checked like ipc_publish
// ones, [limits] and [restart] values are range-checked). Every problem is
// reported at once, each naming the file, the line and the dotted key
// (such as "component[0].file") and saying what would be valid. Keys this
// runtime does not know are warnings, not errors: upstream ignores them
// silently, which hides typos.
//
// Parse works on bytes and never touches the filesystem; Load reads a
// capsule directory and also checks that the wasm file is a WebAssembly
// core module; ForWasm builds the default manifest of a bare .wasm file.
package manifest
