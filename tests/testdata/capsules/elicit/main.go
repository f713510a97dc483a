//go:build wasip1

// Command elicit is a test-only capsule for astrid_elicit and astrid_has_secret.
//
//   - astrid_install asks for region (text, default "us"), api_key (secret) and tier (select of
//     "free" and "pro"), stores region and tier in the KV (never the secret), and records in the
//     KV key "had_secret" what astrid_has_secret said about api_key before and after.
//   - show returns {"region","tier","had_secret","has_secret","api_key"}: api_key is the config
//     value of the secret [env] key api_key (the secret store's value).
package main

import (
	"encoding/json"
	"fmt"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

//go:wasmexport astrid_install
func install() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		before, err := astrid.HasSecret("api_key")
		if err != nil {
			return nil, err
		}
		region, err := astrid.ElicitText("region", "Region", "us")
		if err != nil {
			return nil, err
		}
		if err := astrid.ElicitSecret("api_key", "API key"); err != nil {
			return nil, err
		}
		tier, err := astrid.ElicitSelect("tier", "Tier", []string{"free", "pro"})
		if err != nil {
			return nil, err
		}
		after, err := astrid.HasSecret("api_key")
		if err != nil {
			return nil, err
		}
		for k, v := range map[string]string{"region": region, "tier": tier, "had_secret": fmt.Sprintf("%t,%t", before, after)} {
			if err := astrid.KVSet(k, []byte(v)); err != nil {
				return nil, err
			}
		}
		astrid.Log(astrid.LogInfo, "install: region "+region+", tier "+tier)
		return nil, nil
	})
}

//go:wasmexport show
func show() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		out := map[string]any{}
		for _, k := range []string{"region", "tier", "had_secret"} {
			v, err := astrid.KVGet(k)
			if err != nil {
				return nil, err
			}
			out[k] = string(v)
		}
		has, err := astrid.HasSecret("api_key")
		if err != nil {
			return nil, err
		}
		out["has_secret"] = has
		out["api_key"], _ = astrid.Config("api_key")
		return json.Marshal(out)
	})
}
