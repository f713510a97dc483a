package envconfig

import (
	"maps"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/secretstore"
)

// IsSecret reports whether an [env] value is a secret (type = "secret"): it is read without echo,
// never shown (see Shown), never logged, and saved in the secret store (package secretstore,
// STATE/secrets/NAME.json), not in the configuration file. This is the one place that decides
// what a secret is.
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

// ReadAll returns capsule m's saved values: its configuration file (Read) with the values of its
// secret [env] keys taken from the secret store. A secret still in the configuration file (saved
// there by an older version) is used when the store has none for its key.
func ReadAll(stateDir string, m *manifest.Manifest) (map[string]string, error) {
	saved, err := Read(stateDir, m.ID())
	if err != nil {
		return nil, err
	}
	secrets, err := secretstore.All(stateDir, m.ID())
	if err != nil {
		return nil, err
	}
	for k, v := range secrets {
		if def, ok := m.Env[k]; ok && IsSecret(def) {
			if saved == nil {
				saved = map[string]string{}
			}
			saved[k] = v
		}
	}
	return saved, nil
}

// splitSecrets separates the values of m's secret [env] keys from the others.
func splitSecrets(m *manifest.Manifest, values map[string]string) (plain, secrets map[string]string) {
	plain, secrets = map[string]string{}, map[string]string{}
	for k, v := range values {
		if def, ok := m.Env[k]; ok && IsSecret(def) {
			secrets[k] = v
		} else {
			plain[k] = v
		}
	}
	return plain, secrets
}

// saveSecrets stores secrets in the secret store and removes unset keys from it.
func saveSecrets(stateDir string, m *manifest.Manifest, secrets map[string]string, unset []string) error {
	if len(secrets) > 0 {
		if err := secretstore.Set(stateDir, m.ID(), maps.Clone(secrets)); err != nil {
			return err
		}
	}
	if len(unset) > 0 {
		return secretstore.Delete(stateDir, m.ID(), unset...)
	}
	return nil
}
