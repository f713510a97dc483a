package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/astrid-go/astrid/host/store"
	"github.com/astrid-go/astrid/shared/logtext"
)

// listRow is one installed capsule as `astrid-host list` shows it.
type listRow struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
	Hash    string `json:"wasm_hash"`
	// Integrity is verified (the module matches meta.json's hash), modified (it does not),
	// no_hash (meta.json records none) or error (Error says why it could not be checked).
	Integrity string `json:"integrity"`
	Error     string `json:"error,omitempty"`
}

// Integrity states of a listRow.
const (
	integrityVerified = "verified"
	integrityModified = "modified"
	integrityNoHash   = "no_hash"
	integrityError    = "error"
)

func newListRow(in store.Installed) listRow {
	r := listRow{Name: in.Name}
	if in.Meta != nil {
		r.Version, r.Source, r.Hash = in.Meta.Version, in.Meta.Source, in.Meta.WasmHash
	}
	switch err := store.Verify(in); {
	case err == nil:
		r.Integrity = integrityVerified
	case errors.Is(err, store.ErrHashMismatch):
		r.Integrity, r.Error = integrityModified, err.Error()
	case errors.Is(err, store.ErrNoHash):
		r.Integrity, r.Error = integrityNoHash, err.Error()
	default:
		r.Integrity, r.Error = integrityError, err.Error()
	}
	return r
}

// writeListTable prints the rows as a table. meta.json and the manifest are files anyone who can
// write the store controls: every field is escaped.
func writeListTable(w io.Writer, rows []listRow) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no capsule is installed")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tINTEGRITY\tSOURCE")
	for _, r := range rows {
		integrity := r.Integrity
		switch r.Integrity {
		case integrityModified:
			integrity = "MODIFIED (hash mismatch)"
		case integrityNoHash:
			integrity = "NO HASH"
		case integrityError:
			integrity = "cannot check: " + r.Error
		case integrityVerified:
			integrity = "verified " + shortHash(r.Hash)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", logtext.Escape(r.Name), orDash(logtext.Escape(r.Version)), logtext.Escape(integrity), orDash(logtext.Escape(r.Source)))
	}
	tw.Flush()
}

func writeListJSON(stdout, stderr io.Writer, rows []listRow) int {
	data, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	stdout.Write(logtext.EscapeJSON(append(data, '\n')))
	return exitOK
}

// shortHash is the first 16 hex digits of a BLAKE3 hash, for the table.
func shortHash(h string) string {
	if len(h) > 16 {
		return "blake3:" + h[:16] + "…"
	}
	return "blake3:" + h
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
