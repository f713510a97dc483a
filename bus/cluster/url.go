package cluster

import (
	"net/url"
	"strings"
)

// redact returns a server URL (or a comma-separated list) without passwords, for errors and logs.
func redact(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
