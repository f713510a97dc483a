package manifest

import (
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// plainVersion matches a version written without an operator, such as
// "1", "1.2" or "1.2.3-rc.1".
var plainVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// ParseRequirement parses a version requirement (package.astrid-version,
// an [imports] version) with the meaning upstream gives it. Upstream reads
// requirements with Rust's semver crate (Cargo syntax), where a version
// without an operator is a caret requirement: "0.5.0" means "^0.5.0" and
// accepts 0.5.1. Masterminds semver reads such a version as an exact
// match, so each comma-separated comparator that is a plain version gets a
// "^" before Masterminds parses the requirement. Everything else
// (">=0.1.0", "~1.2", "1.x", ">=1, <2", Masterminds' "||") is left as is.
//
// It is exported so that the code that matches imports against exports
// reads requirements exactly as the manifest validated them.
func ParseRequirement(req string) (*semver.Constraints, error) {
	parts := strings.Split(req, ",")
	for i, p := range parts {
		if t := strings.TrimSpace(p); plainVersion.MatchString(t) {
			parts[i] = "^" + t
		}
	}
	return semver.NewConstraint(strings.Join(parts, ","))
}

// checkAstridVersion checks package.astrid-version against RuntimeVersion.
func (d *decoder) checkAstridVersion(p keyPath, req string) {
	c, err := ParseRequirement(req)
	if err != nil {
		d.errorf(p, "%q is not a valid version requirement (%v); write one such as \">=0.5.0\" or \"^0.5\"", req, err)
		return
	}
	if !c.Check(semver.MustParse(RuntimeVersion)) {
		d.errorf(p, "capsule requires astrid-version %s, but this runtime is %s", req, RuntimeVersion)
	}
}

// checkVersion checks package.version: strict semver MAJOR.MINOR.PATCH.
func (d *decoder) checkVersion(p keyPath, v string) {
	if _, err := semver.StrictNewVersion(v); err != nil {
		d.errorf(p, "%q is not a valid version: want strict semver MAJOR.MINOR.PATCH such as \"0.1.0\" (optionally with a -prerelease or +build suffix)", v)
	}
}

// checkRequirement checks an import's version requirement.
func (d *decoder) checkRequirement(p keyPath, req string) {
	if req == "" {
		d.errorf(p, `must not be empty: a version requirement such as "^1.0" or ">=1.2, <2"`)
		return
	}
	if _, err := ParseRequirement(req); err != nil {
		d.errorf(p, "%q is not a valid version requirement (%v); write one such as \"^1.0\" or \">=1.2, <2\"", req, err)
	}
}

// checkExactVersion checks an export's exact version.
func (d *decoder) checkExactVersion(p keyPath, v string) {
	if _, err := semver.StrictNewVersion(v); err != nil {
		d.errorf(p, "%q is not a valid version: an export needs an exact strict semver version MAJOR.MINOR.PATCH such as \"1.0.0\"", v)
	}
}
