package shim

import "github.com/astrid-go/astrid/shim/internal/kernel"

// importsCopies reports whether a guest imports astrid_kernel_read or astrid_kernel_write, the bulk
// kernel copies (docs/abi.md): an Astrid addition to the ABI that the kernel serves in
// WebAssembly (kernel.DefineCopies, kernel.BindGuest), without a call into Go. A guest that
// imports neither gets no second kernel instance.
func importsCopies(imported map[[2]string]bool) bool {
	for name := range kernel.CopyImports {
		if imported[[2]string{userModule, name}] {
			return true
		}
	}
	return false
}
