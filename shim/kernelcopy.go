package shim

import (
	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// kernelRead: astrid_kernel_read(addr, dst, n) copies n bytes of the kernel memory at addr (inside
// one live block) into the guest's own memory at dst, in one call instead of one load_u64 per 8
// bytes. An Astrid addition to the ABI (docs/abi.md); kernel.CopyOut checks both ranges, and a
// range outside either memory traps the guest's call.
func (v *env) kernelRead(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	return nil, k.CopyOut(c, uint64(args[0].I64()), uint64(args[1].I64()), uint64(args[2].I64()))
}

// kernelWrite: astrid_kernel_write(addr, src, n) copies n bytes of the guest's memory at src into
// the kernel memory at addr (inside one live block): the reverse of kernelRead.
func (v *env) kernelWrite(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	return nil, k.CopyIn(c, uint64(args[0].I64()), uint64(args[1].I64()), uint64(args[2].I64()))
}
