package pushsim

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFilesWritten(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "not", "yet")
	e := start(t, Options{Dir: dir, ProjectID: "my-project", KeyID: "ABC123DEF4", TeamID: "TEAMTEAM01"})
	f := e.s.Files()
	if f.AuthKeyFile != filepath.Join(dir, "AuthKey_ABC123DEF4.p8") {
		t.Errorf("auth key %s", f.AuthKeyFile)
	}

	var sa map[string]string
	if err := json.Unmarshal(readFile(t, f.ServiceAccountFile), &sa); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"type":         "service_account",
		"project_id":   "my-project",
		"client_email": "pushd@my-project.iam.gserviceaccount.com",
		"token_uri":    e.s.URL() + "/token",
	} {
		if sa[k] != want {
			t.Errorf("service-account.json %s = %q, want %q", k, sa[k], want)
		}
	}
	for _, k := range []string{"private_key_id", "private_key", "client_id", "auth_uri"} {
		if sa[k] == "" {
			t.Errorf("service-account.json has no %s", k)
		}
	}

	var cfg configFile
	if err := json.Unmarshal(readFile(t, f.ConfigFile), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.URL != e.s.URL() || cfg.AdminURL != e.s.AdminURL() || cfg.CAFile != f.CAFile ||
		cfg.APNs.TeamID != "TEAMTEAM01" || cfg.APNs.KeyID != "ABC123DEF4" || cfg.APNs.AuthKeyPath != f.AuthKeyFile ||
		len(cfg.APNs.BundleIDs) != 1 || cfg.FCM.ProjectID != "my-project" ||
		cfg.FCM.ServiceAccountFile != f.ServiceAccountFile || cfg.FCM.TokenURI != e.s.URL()+"/token" {
		t.Errorf("pushsim.json %+v does not match Files %+v", cfg, f)
	}

	// The server certificate chains to ca.pem for every loopback name.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFile(t, f.CAFile))
	block, _ := pem.Decode(readFile(t, f.ServerCertFile))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if info, err := os.Stat(f.AuthKeyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("auth key mode %v (%v), want 0600", info.Mode(), err)
	}
	if _, err := tls.LoadX509KeyPair(f.ServerCertFile, f.ServerKeyFile); err != nil {
		t.Errorf("server key pair: %v", err)
	}
}

func TestFilesReusedAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := start(t, Options{Dir: dir})
	f1 := first.s.Files()
	keep := map[string][]byte{}
	for _, p := range []string{f1.CAFile, f1.AuthKeyFile, f1.ServerCertFile} {
		keep[p] = readFile(t, p)
	}
	oldJWT := first.jwt
	oldClient := first.client
	_, saKID := readServiceAccount(t, f1.ServiceAccountFile)
	oldURL := first.s.URL()
	if err := first.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	second := start(t, Options{Dir: dir})
	second.clock = first.clock
	f2 := second.s.Files()
	for p, b := range keep {
		if string(readFile(t, p)) != string(b) {
			t.Errorf("%s changed across a restart", p)
		}
	}
	if _, kid := readServiceAccount(t, f2.ServiceAccountFile); kid != saKID {
		t.Errorf("service account key id %s, was %s: want the key reused", kid, saKID)
	}
	if second.s.URL() == oldURL {
		t.Skip("the kernel gave the same port twice; nothing to check about token_uri")
	}
	if f2.TokenURI != second.s.URL()+"/token" {
		t.Errorf("TokenURI %s, want the new port", f2.TokenURI)
	}
	var sa map[string]string
	json.Unmarshal(readFile(t, f2.ServiceAccountFile), &sa)
	if sa["token_uri"] != second.s.URL()+"/token" {
		t.Errorf("service-account.json token_uri %s, want rewritten to %s", sa["token_uri"], second.s.URL()+"/token")
	}

	// A client set up against the first run keeps working: same CA, same key.
	second.client = oldClient
	second.jwt = oldJWT
	if r := second.pushAPNs(devToken); r.status != 200 {
		t.Errorf("old client and JWT after restart: %d %s", r.status, r.body)
	}
	second.accessToken()
}

func TestFilesCoverListenHost(t *testing.T) {
	t.Parallel()
	names, ips := serverNames("192.0.2.7")
	if len(names) != 1 || len(ips) != 3 || !ips[2].Equal(net.ParseIP("192.0.2.7")) {
		t.Errorf("serverNames(192.0.2.7) = %v %v, want loopback plus 192.0.2.7", names, ips)
	}
	names, ips = serverNames("0.0.0.0")
	if len(names) != 1 || len(ips) != 2 {
		t.Errorf("serverNames(0.0.0.0) = %v %v, want loopback only", names, ips)
	}
	names, _ = serverNames("pushsim.internal")
	if len(names) != 2 || names[1] != "pushsim.internal" {
		t.Errorf("serverNames(pushsim.internal) = %v", names)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]Options{
		"no dir":        {},
		"short team":    {TeamID: "TEAM"},
		"lower key id":  {KeyID: "key0000001"},
		"bad bundle":    {BundleIDs: []string{"demo"}},
		"bad project":   {ProjectID: "My Project"},
		"negative slow": {SlowDelay: -time.Second},
		"bad addr":      {Addr: "nowhere"},
	} {
		if name != "no dir" {
			o.Dir = t.TempDir()
		}
		if s, err := Start(o); err == nil {
			s.Close()
			t.Errorf("%s: Start succeeded, want an error", name)
		}
	}
}
