package pushsim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// serveHTTP routes the TLS listener: the token endpoint, FCM under /v1/,
// and everything else is APNs (which answers BadPath off /3/device/).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f := s.faults.Load()
	if s.delivery != nil {
		r = r.WithContext(context.WithValue(r.Context(), arrivalKey{}, s.now()))
	}
	if c := connFrom(r); c != nil && c.countRequest(f.GoAwayAfter) {
		// Go's HTTP/2 server turns this into a graceful GOAWAY for the
		// connection once the response is written.
		w.Header().Set("Connection", "close")
		s.stats.goaways.Add(1)
	}
	if f.Latency > 0 && !sleep(r.Context(), f.Latency) {
		// Closing, or the client went away: no answer. Returning would
		// answer 200 for a push that was never delivered.
		panic(http.ErrAbortHandler)
	}
	switch {
	case r.URL.Path == "/token":
		s.serveToken(w, r, f)
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		s.serveFCM(w, r, f)
	default:
		s.serveAPNs(w, r, f)
	}
}

// arrivalKey keys a request's arrival time in its context.
type arrivalKey struct{}

// arrival is when the request reached the handler, before any injected
// latency; zero without a delivery log.
func arrival(ctx context.Context) time.Time {
	t, _ := ctx.Value(arrivalKey{}).(time.Time)
	return t
}

// faultsJSON is the admin form of Faults.
type faultsJSON struct {
	FailRate                 float64 `json:"fail_rate"`
	ThrottleRate             float64 `json:"throttle_rate"`
	RetryAfter               int     `json:"retry_after"`
	Latency                  string  `json:"latency"`
	GoAwayAfter              int     `json:"goaway_after"`
	ExpiredProviderTokenOnce bool    `json:"expired_provider_token_once"`
	InvalidProviderToken     bool    `json:"invalid_provider_token"`
	RejectServiceAccount     bool    `json:"reject_service_account"`
	TokenEndpointUnavailable bool    `json:"token_endpoint_unavailable"`
	RejectAccessTokens       bool    `json:"reject_access_tokens"`
	Seed                     int64   `json:"seed"`
}

func (f Faults) toJSON() faultsJSON {
	return faultsJSON{
		FailRate:                 f.FailRate,
		ThrottleRate:             f.ThrottleRate,
		RetryAfter:               f.RetryAfter,
		Latency:                  f.Latency.String(),
		GoAwayAfter:              f.GoAwayAfter,
		ExpiredProviderTokenOnce: f.ExpiredProviderTokenOnce,
		InvalidProviderToken:     f.InvalidProviderToken,
		RejectServiceAccount:     f.RejectServiceAccount,
		TokenEndpointUnavailable: f.TokenEndpointUnavailable,
		RejectAccessTokens:       f.RejectAccessTokens,
		Seed:                     f.Seed,
	}
}

func (j faultsJSON) faults() (Faults, error) {
	f := Faults{
		FailRate:                 j.FailRate,
		ThrottleRate:             j.ThrottleRate,
		RetryAfter:               j.RetryAfter,
		GoAwayAfter:              j.GoAwayAfter,
		ExpiredProviderTokenOnce: j.ExpiredProviderTokenOnce,
		InvalidProviderToken:     j.InvalidProviderToken,
		RejectServiceAccount:     j.RejectServiceAccount,
		TokenEndpointUnavailable: j.TokenEndpointUnavailable,
		RejectAccessTokens:       j.RejectAccessTokens,
		Seed:                     j.Seed,
	}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return Faults{}, fmt.Errorf("latency: %w", err)
		}
		f.Latency = d
	}
	return f, f.Validate()
}

// adminHandler serves the admin API described in the package doc.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, s.Stats())
	})
	mux.HandleFunc("GET /deliveries", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for _, d := range s.Deliveries() {
			if err := enc.Encode(d); err != nil {
				return
			}
		}
		bw.Flush()
	})
	mux.HandleFunc("GET /pushes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for _, p := range s.Pushes() {
			if err := enc.Encode(p); err != nil {
				return
			}
		}
		bw.Flush()
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, s.currentFaults().toJSON())
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var j faultsJSON
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		f, err := j.faults()
		if err != nil {
			http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		writeAdminJSON(w, s.currentFaults().toJSON())
	})
	return mux
}

func writeAdminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
