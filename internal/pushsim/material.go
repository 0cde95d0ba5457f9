package pushsim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Files names the generated material and the ids a client needs. Paths are
// absolute.
type Files struct {
	Dir        string // Options.Dir
	ConfigFile string // pushsim.json: all of the below, for other processes
	CAFile     string // ca.pem: the CA that signed the server certificate
	// CAKeyFile is ca-key.pem, kept so that the server certificate can be
	// renewed under the same CA.
	CAKeyFile      string
	ServerCertFile string   // server.pem
	ServerKeyFile  string   // server-key.pem
	AuthKeyFile    string   // AuthKey_<KeyID>.p8: APNs token-auth key, PKCS#8 EC P-256
	TeamID         string   // APNs JWT "iss"
	KeyID          string   // APNs JWT "kid"
	BundleIDs      []string // apps APNs accepts topics for
	// ServiceAccountFile is service-account.json, a Google service-account
	// key file whose token_uri is rewritten on every start.
	ServiceAccountFile string
	ProjectID          string // FCM project
	ClientEmail        string // service account e-mail, the OAuth JWT "iss"
	TokenURI           string // URL() + "/token"
}

// Names of the files in Options.Dir.
const (
	configName         = "pushsim.json"
	caName             = "ca.pem"
	caKeyName          = "ca-key.pem"
	serverCertName     = "server.pem"
	serverKeyName      = "server-key.pem"
	serviceAccountName = "service-account.json"
)

// certRenewBefore is how long before expiry a reused server certificate is
// replaced.
const certRenewBefore = 24 * time.Hour

// material is the key material a Server runs with.
type material struct {
	dir        string
	serverCert tls.Certificate
	apnsKey    *ecdsa.PublicKey
	authKey    string // path of the .p8
	sa         serviceAccount
	saKey      *rsa.PublicKey
}

// serviceAccount is the layout of a Google service-account key file.
type serviceAccount struct {
	Type                    string `json:"type"`
	ProjectID               string `json:"project_id"`
	PrivateKeyID            string `json:"private_key_id"`
	PrivateKey              string `json:"private_key"`
	ClientEmail             string `json:"client_email"`
	ClientID                string `json:"client_id"`
	AuthURI                 string `json:"auth_uri"`
	TokenURI                string `json:"token_uri"`
	AuthProviderX509CertURL string `json:"auth_provider_x509_cert_url"`
	ClientX509CertURL       string `json:"client_x509_cert_url"`
	UniverseDomain          string `json:"universe_domain"`
}

// loadMaterial reuses or creates the CA, the server certificate (valid for
// the loopback names and listenHost), the APNs key and the service-account
// key in dir.
func loadMaterial(dir, keyID, listenHost string, now time.Time) (*material, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("options: Dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("options: Dir: %w", err)
	}
	m := &material{dir: dir}

	caCert, caKey, fresh, err := loadOrCreateCA(dir, now)
	if err != nil {
		return nil, err
	}
	names, ips := serverNames(listenHost)
	m.serverCert, err = loadOrCreateServerCert(dir, caCert, caKey, names, ips, fresh, now)
	if err != nil {
		return nil, err
	}

	m.authKey = filepath.Join(dir, "AuthKey_"+keyID+".p8")
	apnsKey, err := loadOrCreateKey(m.authKey, func() (crypto.Signer, error) {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	if err != nil {
		return nil, err
	}
	ek, ok := apnsKey.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an EC P-256 key: remove it to generate a new one", m.authKey)
	}
	m.apnsKey = &ek.PublicKey

	if err := m.loadOrCreateServiceAccount(); err != nil {
		return nil, err
	}
	return m, nil
}

// serverNames are the names the server certificate must cover.
func serverNames(listenHost string) ([]string, []net.IP) {
	names := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(listenHost); ip != nil {
		if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	} else if listenHost != "" && listenHost != "localhost" {
		names = append(names, listenHost)
	}
	return names, ips
}

func loadOrCreateCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, bool, error) {
	certPath, keyPath := filepath.Join(dir, caName), filepath.Join(dir, caKeyName)
	cert, key, err := loadPair(certPath, keyPath)
	if err == nil && cert.IsCA && now.Before(cert.NotAfter.Add(-certRenewBefore)) {
		return cert, key, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, fmt.Errorf("%w: remove %s and %s to generate a new CA", err, certPath, keyPath)
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pushsim CA", Organization: []string{"pushsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("create CA: %w", err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return nil, nil, false, err
	}
	cert, err = x509.ParseCertificate(der)
	return cert, key, true, err
}

func loadOrCreateServerCert(dir string, ca *x509.Certificate, caKey crypto.Signer, names []string, ips []net.IP, freshCA bool, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, serverCertName), filepath.Join(dir, serverKeyName)
	if !freshCA {
		cert, _, err := loadPair(certPath, keyPath)
		if err == nil && cert.CheckSignatureFrom(ca) == nil && now.Before(cert.NotAfter.Add(-certRenewBefore)) && covers(cert, names, ips) {
			return tls.LoadX509KeyPair(certPath, keyPath)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "pushsim", Organization: []string{"pushsim"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create server certificate: %w", err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

func covers(cert *x509.Certificate, names []string, ips []net.IP) bool {
	for _, n := range names {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// loadPair reads a PEM certificate and its PKCS#8 key.
func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no PEM CERTIFICATE", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func writePair(certPath, keyPath string, der []byte, key crypto.Signer) error {
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func loadOrCreateKey(path string, gen func() (crypto.Signer, error)) (crypto.Signer, error) {
	key, err := readKey(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: remove it to generate a new key", err)
	}
	key, err = gen()
	if err != nil {
		return nil, err
	}
	return key, writeKey(path, key)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKeyPEM(path, data)
}

func parseKeyPEM(name string, data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM PRIVATE KEY", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", name, k)
	}
	return s, nil
}

func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writeKey(path string, key crypto.Signer) error {
	data, err := keyPEM(key)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeFile(path, data, 0o600)
}

// writeFile replaces path atomically, so a reader never sees half a file.
func writeFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadOrCreateServiceAccount reuses the RSA key, key id and client id of an
// existing service-account.json; the rest is rewritten by writeConfig.
func (m *material) loadOrCreateServiceAccount() error {
	path := filepath.Join(m.dir, serviceAccountName)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &m.sa); err != nil {
			return fmt.Errorf("%s: %w: remove it to generate a new one", path, err)
		}
		key, err := parseKeyPEM(path+": private_key", []byte(m.sa.PrivateKey))
		if err != nil {
			return fmt.Errorf("%w: remove it to generate a new one", err)
		}
		rk, ok := key.(*rsa.PrivateKey)
		if !ok || m.sa.PrivateKeyID == "" {
			return fmt.Errorf("%s: want an RSA private_key and a private_key_id: remove it to generate a new one", path)
		}
		m.saKey = &rk.PublicKey
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pemKey, err := keyPEM(rk)
	if err != nil {
		return err
	}
	m.sa = serviceAccount{
		PrivateKeyID: randomHex(20),
		PrivateKey:   string(pemKey),
		ClientID:     randomDigits(21),
	}
	m.saKey = &rk.PublicKey
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomDigits(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

// configFile is the layout of pushsim.json.
type configFile struct {
	URL      string `json:"url"`
	AdminURL string `json:"admin_url"`
	CAFile   string `json:"ca_file"`
	APNs     struct {
		TeamID      string   `json:"team_id"`
		KeyID       string   `json:"key_id"`
		AuthKeyPath string   `json:"auth_key_path"`
		BundleIDs   []string `json:"bundle_ids"`
	} `json:"apns"`
	FCM struct {
		ProjectID          string `json:"project_id"`
		ServiceAccountFile string `json:"service_account_file"`
		TokenURI           string `json:"token_uri"`
	} `json:"fcm"`
}

// writeConfig rewrites service-account.json for this start's URL and
// writes pushsim.json.
func writeConfig(o Options, m *material, url, adminURL string) (Files, error) {
	f := Files{
		Dir:                m.dir,
		ConfigFile:         filepath.Join(m.dir, configName),
		CAFile:             filepath.Join(m.dir, caName),
		CAKeyFile:          filepath.Join(m.dir, caKeyName),
		ServerCertFile:     filepath.Join(m.dir, serverCertName),
		ServerKeyFile:      filepath.Join(m.dir, serverKeyName),
		AuthKeyFile:        m.authKey,
		TeamID:             o.TeamID,
		KeyID:              o.KeyID,
		BundleIDs:          o.BundleIDs,
		ServiceAccountFile: filepath.Join(m.dir, serviceAccountName),
		ProjectID:          o.ProjectID,
		ClientEmail:        "pushd@" + o.ProjectID + ".iam.gserviceaccount.com",
		TokenURI:           url + "/token",
	}

	sa := &m.sa
	sa.Type = "service_account"
	sa.ProjectID = o.ProjectID
	sa.ClientEmail = f.ClientEmail
	sa.AuthURI = "https://accounts.google.com/o/oauth2/auth"
	sa.TokenURI = f.TokenURI
	sa.AuthProviderX509CertURL = "https://www.googleapis.com/oauth2/v1/certs"
	sa.ClientX509CertURL = "https://www.googleapis.com/robot/v1/metadata/x509/pushd%40" + o.ProjectID + ".iam.gserviceaccount.com"
	sa.UniverseDomain = "googleapis.com"
	if err := writeJSON(f.ServiceAccountFile, sa, 0o600); err != nil {
		return Files{}, err
	}

	var c configFile
	c.URL, c.AdminURL, c.CAFile = url, adminURL, f.CAFile
	c.APNs.TeamID, c.APNs.KeyID, c.APNs.AuthKeyPath, c.APNs.BundleIDs = f.TeamID, f.KeyID, f.AuthKeyFile, f.BundleIDs
	c.FCM.ProjectID, c.FCM.ServiceAccountFile, c.FCM.TokenURI = f.ProjectID, f.ServiceAccountFile, f.TokenURI
	if err := writeJSON(f.ConfigFile, &c, 0o644); err != nil {
		return Files{}, err
	}
	return f, nil
}

func writeJSON(path string, v any, perm fs.FileMode) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeFile(path, buf.Bytes(), perm)
}
