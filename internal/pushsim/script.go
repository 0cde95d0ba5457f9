package pushsim

import (
	"net/http"
	"strconv"
	"sync"
)

// Answer is a scripted reply to the requests for one device token, for
// tests of how a client reads answers the token prefixes cannot produce:
// every documented APNs reason or FCM error code, a Retry-After date, an
// HTML page from a proxy, a reset stream.
//
// A script applies only to requests that pass every check: a request the
// simulator would reject still gets the simulator's answer, so scripting
// never makes the simulator less strict. A scripted answer records no
// Delivery; it counts in ProviderStats.Scripted and ByStatus.
type Answer struct {
	// Status is the HTTP status. It is ignored with Reset.
	Status int
	// Header is added to the answer. APNs answers carry a generated
	// apns-id unless Header sets one.
	Header http.Header
	// Body is sent as it is, Content-Type application/json unless Header
	// says otherwise.
	Body string
	// Reset resets the stream (RST_STREAM) instead of answering.
	Reset bool
}

// scripts are the scripted answers by provider and token.
type scripts struct {
	mu sync.RWMutex
	m  map[deliveryKey]Answer
}

func (s *scripts) init() { s.m = make(map[deliveryKey]Answer) }

func (s *scripts) reset() {
	s.mu.Lock()
	s.m = make(map[deliveryKey]Answer)
	s.mu.Unlock()
}

func (s *scripts) lookup(provider, token string) (Answer, bool) {
	s.mu.RLock()
	a, ok := s.m[deliveryKey{provider, token}]
	s.mu.RUnlock()
	return a, ok
}

// Script makes every later valid request to provider (ProviderAPNs or
// ProviderFCM) for the device token get a, until Reset. An FCM script
// matches message.token; topic and condition sends are never scripted.
func (s *Server) Script(provider, token string, a Answer) {
	s.scripts.mu.Lock()
	s.scripts.m[deliveryKey{provider, token}] = a
	s.scripts.mu.Unlock()
}

// writeScripted sends a and counts it.
func (s *Server) writeScripted(w http.ResponseWriter, st *providerStats, a Answer) {
	st.scripted.Add(1)
	if a.Reset {
		panic(http.ErrAbortHandler) // net/http resets the stream quietly
	}
	st.answer(a.Status, "", s.now)
	h := w.Header()
	for k, v := range a.Header {
		h[http.CanonicalHeaderKey(k)] = v
	}
	if a.Body != "" {
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json")
		}
		h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	}
	w.WriteHeader(a.Status)
	if a.Body != "" {
		w.Write([]byte(a.Body))
	}
}
