package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// API is the [API] section: the device API that the apps call to register
// their installations and report opens (package api).
type API struct {
	// Listen is the host:port of the API (listen), "" when off (the
	// default).
	Listen string
	// TLSCertFile and TLSKeyFile (tls_cert_file, tls_key_file) make the API
	// serve TLS itself; both or neither. Reloading the config reloads them.
	TLSCertFile, TLSKeyFile string
	// Secret signs the push ids that opens quote (secret, at least 32
	// characters); empty: pushd generates one and keeps it in the database,
	// so every instance uses the same.
	Secret string
	// RateLimit is the requests per second one API key may make
	// (rate_limit), default 1000; 0 is unlimited.
	RateLimit float64
}

const defaultAPIRateLimit = 1000

var apiKeys = []string{"listen", "tls_cert_file", "tls_key_file", "secret", "rate_limit"}

// api reads the [API] section.
func (s *section) api() API {
	s.checkKeys(apiKeys)
	var a API
	if e, ok := s.get("listen"); ok && e.value != "" && !strings.EqualFold(e.value, "off") {
		fix := `must be host:port such as ":8080" (every interface) or "127.0.0.1:8080" behind a proxy, or "off"`
		host, port, err := net.SplitHostPort(e.value)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			s.fail(e, errors.New(fix))
		} else if host != "" && net.ParseIP(host) == nil && !hostPattern.MatchString(host) {
			s.fail(e, fmt.Errorf("host %q is not an IP address or host name: %s", host, fix))
		} else {
			a.Listen = e.value
		}
	}
	cert, hasCert := s.get("tls_cert_file")
	key, hasKey := s.get("tls_key_file")
	switch {
	case hasCert && !hasKey:
		s.failMissing("tls_key_file", errors.New("is missing: tls_cert_file needs the certificate's private key, or remove both to serve plain HTTP behind a TLS proxy"))
	case hasKey && !hasCert:
		s.failMissing("tls_cert_file", errors.New("is missing: tls_key_file needs its certificate, or remove both to serve plain HTTP behind a TLS proxy"))
	case hasCert && hasKey:
		a.TLSCertFile, a.TLSKeyFile = s.c.resolve(cert.value), s.c.resolve(key.value)
		if _, err := tls.LoadX509KeyPair(a.TLSCertFile, a.TLSKeyFile); err != nil {
			s.fail(cert, fmt.Errorf("cannot be used with tls_key_file: %v", err))
		}
	}
	if e, ok := s.get("secret"); ok {
		if len(e.value) < 32 {
			s.fail(e, errors.New("is shorter than 32 characters: use a long random value (openssl rand -hex 32), or remove it and pushd keeps one in the database"))
		} else {
			a.Secret = e.value
		}
	}
	a.RateLimit = defaultAPIRateLimit
	if _, ok := s.get("rate_limit"); ok {
		a.RateLimit = s.nonNegative("rate_limit", "requests per second per API key")
	}
	return a
}

// apiKeyPattern is what an API key may hold: it travels in a header.
var apiKeyPattern = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,256}$`)

// apiKeyList reads an app's api_keys: one or two keys (the current one
// and the next, while apps move to it), separated by commas.
func (s *section) apiKeyList() []string {
	e, ok := s.get("api_keys")
	if !ok || strings.TrimSpace(e.value) == "" {
		return nil
	}
	var keys []string
	for _, k := range strings.Split(e.value, ",") {
		k = strings.TrimSpace(k)
		switch {
		case !apiKeyPattern.MatchString(k):
			s.fail(e, errors.New("each key must be 16 to 256 letters, digits or ._~+/=- (generate one with openssl rand -hex 24)"))
			return nil
		case len(keys) > 0 && keys[0] == k:
			s.fail(e, errors.New("names the same key twice"))
			return nil
		}
		keys = append(keys, k)
	}
	if len(keys) > 2 {
		s.fail(e, errors.New("has more than two keys: keep the current one and the next"))
		return nil
	}
	return keys
}
