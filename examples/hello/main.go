//go:build wasip1

// Command hello is the example capsule of the astrid Go SDK. Its exports:
//
//   - greet: the input is a name; the output is "Hello, <name>!";
//   - count_vowels: the output is {"count":N,"total":N,"vowels":"aeiouAEIOU"},
//     where N is the number of vowels in the input, as in Extism's example
//     plugin.
//
// Build it from the repository root:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/hello/hello.wasm ./examples/hello
package main

import (
	"encoding/json"
	"errors"
	"strings"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

// main is required by the c-shared build mode and never called: the host runs
// _initialize and then the exports.
func main() {}

//go:wasmexport greet
func greet() int32 { return astrid.Export(greetName) }

func greetName(name []byte) ([]byte, error) {
	if len(name) == 0 {
		return nil, errors.New("greet: input is empty; pass a name, e.g. --input world")
	}
	return []byte("Hello, " + string(name) + "!"), nil
}

//go:wasmexport count_vowels
func countVowels() int32 { return astrid.Export(countVowelsIn) }

const vowels = "aeiouAEIOU"

// vowelCount is count_vowels' output. Total is the running total of Extism's
// example, which keeps it in a variable across calls; here it covers this
// call only, so it equals Count.
type vowelCount struct {
	Count  int    `json:"count"`
	Total  int    `json:"total"`
	Vowels string `json:"vowels"`
}

func countVowelsIn(input []byte) ([]byte, error) {
	n := 0
	for _, c := range input {
		if strings.IndexByte(vowels, c) >= 0 {
			n++
		}
	}
	return json.Marshal(vowelCount{Count: n, Total: n, Vowels: vowels})
}
