package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/api"
	"github.com/pushd/pushd/config"
	"github.com/pushd/pushd/pushid"
	"github.com/pushd/pushd/store"
)

// pushIDSigner signs push ids with [API] secret, or else with the secret
// kept in the database, which the first instance to need it makes, so that
// every instance signs alike.
func pushIDSigner(ctx context.Context, cfg *config.Config, st *store.Store) (*pushid.Signer, error) {
	if cfg.API.Secret != "" {
		return pushid.New([]byte(cfg.API.Secret)), nil
	}
	need := cfg.API.Listen != ""
	for _, a := range cfg.Apps {
		need = need || len(a.APIKeys) > 0
	}
	if !need {
		return nil, nil
	}
	secret, err := st.Secret(ctx, "push_id_secret")
	if err != nil {
		return nil, err
	}
	return pushid.New(secret), nil
}

// apiApps lists the apps and keys the device API serves.
func apiApps(cfg *config.Config) []api.App {
	var out []api.App
	for _, name := range cfg.AppNames() {
		a := cfg.Apps[name]
		out = append(out, api.App{Name: name, Kind: a.PushType, Keys: a.APIKeys})
	}
	return out
}

// errUsersView is why the device API refuses a users view.
var errUsersView = errors.New("users is a view over your own table, and the device API writes installations into pushd's own users table: remove [API] listen, or register tokens in your table yourself")

// startAPI serves the device API on [API] listen, over TLS when
// tls_cert_file is set.
func (d *service) startAPI(ctx context.Context) error {
	a := d.cfg.API
	isTable, err := d.st.UsersIsTable(ctx)
	if err != nil {
		return err
	}
	if !isTable {
		return fmt.Errorf("%s [API] listen: %w", d.cfg.Path, errUsersView)
	}
	d.api = api.New(d.st, apiApps(d.cfg), api.Options{RateLimit: a.RateLimit, Logger: d.log.With("component", "api"),
		PushIDs: d.pushIDs})
	ln, err := net.Listen("tcp", a.Listen)
	if err != nil {
		return fmt.Errorf("%s [API] listen = %q: %w", d.cfg.Path, a.Listen, err)
	}
	d.apiHTTP = &http.Server{Handler: d.api, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	if a.TLSCertFile != "" {
		if err := d.loadAPICert(a); err != nil {
			ln.Close()
			return err
		}
		d.apiHTTP.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return d.apiCert.Load(), nil }}
		ln = tls.NewListener(ln, d.apiHTTP.TLSConfig)
	}
	go func() {
		if err := d.apiHTTP.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			d.failed <- fmt.Errorf("[API] listen: %w", err)
		}
	}()
	d.log.Info("device API listening", "component", "api", "listen", a.Listen, "tls", a.TLSCertFile != "")
	return nil
}

// loadAPICert (re)loads the API's certificate; a reload swaps it for new
// connections.
func (d *service) loadAPICert(a config.API) error {
	cert, err := tls.LoadX509KeyPair(a.TLSCertFile, a.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("%s [API] tls_cert_file: %w", d.cfg.Path, err)
	}
	d.apiCert.Store(&cert)
	return nil
}

// apiCertHolder is the API's current certificate.
type apiCertHolder = atomic.Pointer[tls.Certificate]
