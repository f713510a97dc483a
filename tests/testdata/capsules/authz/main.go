//go:build wasip1

// Command authz is a test-only capsule of the Go SDK's approval and identity wrappers. Its
// exports:
//
//   - ask: RequestApproval with the input {"action", "resource", "risk_level"}; outputs the
//     ApprovalResult as JSON;
//   - identity: CreateUser, LinkIdentity, ResolveIdentity, ListIdentityLinks and
//     UnlinkIdentity in turn, and one refused call; outputs what each returned as JSON;
//   - run: asks for approval of each request published on test.v1.approval.request and
//     publishes the ApprovalResult on test.v1.approval.result, until the capsule unloads.
package main

import (
	"encoding/json"
	"errors"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

type askRequest struct {
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	RiskLevel string `json:"risk_level"`
}

func ask(req askRequest) (astrid.ApprovalResult, error) {
	return astrid.RequestApproval(req.Action, req.Resource, req.RiskLevel)
}

//go:wasmexport ask
func askExport() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var req askRequest
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		res, err := ask(req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	})
}

//go:wasmexport identity
func identityExport() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		out := map[string]any{}
		id, err := astrid.CreateUser("Alice")
		if err != nil {
			return nil, err
		}
		out["user_id"] = id
		link, err := astrid.LinkIdentity(" Discord ", "123", id, "chat_command")
		if err != nil {
			return nil, err
		}
		out["link"] = link
		user, found, err := astrid.ResolveIdentity("discord", "123")
		if err != nil {
			return nil, err
		}
		out["resolved"], out["found"] = user, found
		links, err := astrid.ListIdentityLinks(id)
		if err != nil {
			return nil, err
		}
		out["links"] = links
		removed, err := astrid.UnlinkIdentity("discord", "123")
		if err != nil {
			return nil, err
		}
		out["removed"] = removed
		_, found, err = astrid.ResolveIdentity("discord", "123")
		out["found_after_unlink"] = found
		_, err = astrid.LinkIdentity("", "1", id, "m")
		var he *astrid.HostError
		if !errors.As(err, &he) {
			return nil, errors.New("a refused link did not return a *HostError")
		}
		out["refusal"] = he.Message
		return json.Marshal(out)
	})
}

//go:wasmexport run
func run() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		sub, err := astrid.Subscribe("test.v1.approval.request")
		if err != nil {
			return nil, err
		}
		astrid.SignalReady()
		for {
			env, err := sub.Recv(5 * time.Second)
			if err != nil {
				return nil, err
			}
			for _, m := range env.Messages {
				var req askRequest
				if err := m.Decode(&req); err != nil {
					astrid.Logf(astrid.LogWarn, "skipping a request that is not {action, resource, risk_level}: %v", err)
					continue
				}
				res, err := ask(req)
				if err != nil {
					return nil, err
				}
				if err := astrid.Publish("test.v1.approval.result", res); err != nil {
					return nil, err
				}
			}
		}
	})
}
