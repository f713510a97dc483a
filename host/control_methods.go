package host

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/astrid-go/astrid/host/control"
)

// Methods of the host's control socket (package control), which `astrid-host run` serves for
// the other astrid-host commands.
const (
	// ControlApprove answers a waiting approval request: params ApproveParams, result the same.
	ControlApprove = "approve"
)

// ApproveParams are the params of ControlApprove.
type ApproveParams struct {
	RequestID string `json:"request_id"`
	Decision  string `json:"decision"`
}

// ControlHandlers are the methods the host serves on its control socket.
func (h *Host) ControlHandlers() control.Handlers {
	hs := control.Handlers{
		ControlApprove: func(_ context.Context, raw json.RawMessage) (any, error) {
			var p ApproveParams
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, fmt.Errorf(`%s: want params {"request_id": string, "decision": string}: %v`, ControlApprove, err)
			}
			if err := h.Approve(p.RequestID, p.Decision); err != nil {
				return nil, err
			}
			return p, nil
		},
		ControlReload: h.controlReload,
	}
	h.busMethods(hs)
	h.capsuleMethods(hs)
	return hs
}
