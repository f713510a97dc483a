package envconfig

import "github.com/astrid-go/astrid/host/manifest"

// IsSecret reports whether an [env] value is a secret (type = "secret"): it is read without echo,
// never shown (see Shown) and never logged. Secrets are saved with the other values, in the 0600
// configuration file, as upstream's install prompt saves them; this is the one place that decides
// what a secret is, so that a separate secret store can take them over.
func IsSecret(def manifest.EnvDef) bool { return def.Type == "secret" }

// Masked is what is shown in place of a secret's value.
const Masked = "********"

// Shown is how a value of def may be displayed: a secret's value as Masked ("" stays "", so the
// operator can tell an empty secret from a set one), anything else as it is.
func Shown(def manifest.EnvDef, value string) string {
	if IsSecret(def) && value != "" {
		return Masked
	}
	return value
}
