package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// problem is an error answer's JSON body.
type problem struct {
	// Error is a stable code for the app's code to branch on.
	Error string `json:"error"`
	// Field names the JSON field (or path part) at fault, if one is.
	Field string `json:"field,omitempty"`
	// Message says what is wrong and how to fix it, for the developer.
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, code, field, message string) {
	writeJSON(w, status, problem{Error: code, Field: field, Message: message})
}

// retryAfter sets Retry-After in whole seconds, at least one.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10))
}
