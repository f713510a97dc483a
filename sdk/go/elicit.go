package astrid

import (
	"encoding/json"
	"fmt"
)

// MaxElicitRequestBytes bounds an elicit request as JSON: 10 MiB (upstream's
// MAX_GUEST_PAYLOAD_LEN). A has_secret request is bounded by MaxKVKeyBytes.
const MaxElicitRequestBytes = 10 << 20

// elicitRequest is astrid_elicit's request, upstream's SDK wire form.
type elicitRequest struct {
	Type        string   `json:"type"`
	Key         string   `json:"key"`
	Description string   `json:"description,omitempty"`
	Options     []string `json:"options,omitempty"`
	Default     *string  `json:"default,omitempty"`
}

// ElicitText asks the operator for a text value for key during the capsule's install or upgrade
// hook (astrid_elicit type "text"); description is the prompt ("" shows the key), def the default
// ("" for none). Outside those hooks, on a cancel or after 120 s without an answer, the host traps
// the call.
func ElicitText(key, description, def string) (string, error) {
	req := elicitRequest{Type: "text", Key: key, Description: description}
	if def != "" {
		req.Default = &def
	}
	return elicitValue(req)
}

// ElicitSelect asks the operator to choose one of options (astrid_elicit type "select"; options
// must not be empty).
func ElicitSelect(key, description string, options []string) (string, error) {
	return elicitValue(elicitRequest{Type: "select", Key: key, Description: description, Options: options})
}

// ElicitSecret asks the operator for a secret for key (astrid_elicit type "secret"). The host
// stores it in its secret store, never in the KV, and never returns it here: the capsule reads it
// through the config of a `secret` [env] key of the same name (Config), and HasSecret says
// whether it is stored.
func ElicitSecret(key, description string) error {
	out, err := elicit(elicitRequest{Type: "secret", Key: key, Description: description})
	if err != nil {
		return err
	}
	var r struct {
		OK bool `json:"ok"`
	}
	if err := json.Unmarshal(out, &r); err != nil || !r.OK {
		return fmt.Errorf("astrid: astrid_elicit: unexpected result %.200q for a secret", out)
	}
	return nil
}

// ElicitArray asks the operator for a list of values (astrid_elicit type "array").
func ElicitArray(key, description string) ([]string, error) {
	out, err := elicit(elicitRequest{Type: "array", Key: key, Description: description})
	if err != nil {
		return nil, err
	}
	var r struct {
		Values []string `json:"values"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("astrid: astrid_elicit: decoding the host's result %.200q: %w", out, err)
	}
	if r.Values == nil {
		r.Values = []string{}
	}
	return r.Values, nil
}

// HasSecret reports whether the host's secret store holds the capsule's secret key
// (astrid_has_secret).
func HasSecret(key string) (bool, error) {
	req, err := json.Marshal(struct {
		Key string `json:"key"`
	}{key})
	if err != nil {
		return false, fmt.Errorf("astrid: HasSecret: encoding the request: %w", err)
	}
	if err := checkLen("HasSecret", "request", len(req), MaxKVKeyBytes); err != nil {
		return false, err
	}
	out := callHost(hostHasSecret, req)
	var r struct {
		Exists bool `json:"exists"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return false, fmt.Errorf("astrid: astrid_has_secret: decoding the host's result %.200q: %w", out, err)
	}
	return r.Exists, nil
}

func elicitValue(req elicitRequest) (string, error) {
	out, err := elicit(req)
	if err != nil {
		return "", err
	}
	var r struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", fmt.Errorf("astrid: astrid_elicit: decoding the host's result %.200q: %w", out, err)
	}
	return r.Value, nil
}

func elicit(req elicitRequest) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("astrid: Elicit: encoding the request: %w", err)
	}
	if err := checkLen("Elicit", "request", len(b), MaxElicitRequestBytes); err != nil {
		return nil, err
	}
	return callHost(hostElicit, b), nil
}
