package sandbox

import (
	"fmt"
	"os"
	"strconv"
)

// testProgram runs the test program name (a sandboxed child) and returns its exit code.
func testProgram(name string, args []string) int {
	switch name {
	case "__exit":
		code, _ := strconv.Atoi(args[0])
		return code
	}
	fmt.Fprintf(os.Stderr, "unknown test program %q\n", name)
	return 2
}
