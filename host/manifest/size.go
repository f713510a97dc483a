package manifest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps the lower-cased units ParseSize accepts to their size in
// bytes.
var sizeUnits = map[string]uint64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
}

// sizeForms describes the accepted forms, for error messages.
const sizeForms = `digits with an optional unit B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), such as "64MiB" or "1024"`

// ParseSize parses a size in bytes written as plain digits ("1024") or as
// digits followed by a unit ("64MiB", "512KiB", "1GiB", "100MB"), with
// optional spaces between them. Units are B, KB, MB, GB (decimal) and KiB,
// MiB, GiB (binary), matched without regard to case. Fractions and negative
// sizes are refused, as are sizes that do not fit in a uint64.
//
// It is exported because command-line flags that set limits accept the
// same forms as [limits] in Capsule.toml.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want %s", s, sizeForms)
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q; want %s", s, strings.TrimSpace(t[i:]), sizeForms)
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Errorf("invalid size %q: too large (the maximum is %d bytes)", s, uint64(math.MaxUint64))
	}
	return n * mult, nil
}
