package config_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/config"
)

// Key material is generated once per test binary: RSA generation is slow.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	p256Key = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PRIVATE KEY", der)
}

// p8 returns an APNs auth key as Apple issues it.
func p8(t testing.TB) []byte { return pkcs8(t, p256Key()) }

func p384PKCS8(t testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pkcs8(t, k)
}

func sec1(t testing.TB) []byte {
	der, err := x509.MarshalECPrivateKey(p256Key())
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("EC PRIVATE KEY", der)
}

func ed25519PKCS8(t testing.TB) []byte {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pkcs8(t, k)
}

// caCert returns a self-signed CA certificate in PEM.
func caCert(t testing.TB) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pushd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, p256Key().Public(), p256Key())
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("CERTIFICATE", der)
}

// serviceAccount returns a service-account key file as the Firebase console
// issues it, after edit changes its fields (a nil value deletes one).
func serviceAccount(t testing.TB, edit map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"type":                        "service_account",
		"project_id":                  "test-project",
		"private_key_id":              "0123456789abcdef",
		"private_key":                 string(pkcs8(t, rsaKey())),
		"client_email":                "pushd@test-project.iam.gserviceaccount.com",
		"client_id":                   "1234567890",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://oauth2.googleapis.com/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}
	for k, v := range edit {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writeFile writes data to dir/name with the given mode, whatever the umask.
func writeFile(t testing.TB, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// Paths of the key files in a test directory, as the base config names them.
const (
	authKeyFile        = "keys/AuthKey_ABC123DEFG.p8"
	serviceAccountFile = "keys/service-account.json"
)

// keyDir returns a directory holding a valid APNs key and service account.
func keyDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, authKeyFile, p8(t), 0o600)
	writeFile(t, dir, serviceAccountFile, serviceAccount(t, nil), 0o600)
	return dir
}

// ini is a config file under construction: sections in order, each with its
// lines.
type ini []iniSection

type iniSection struct {
	name  string
	lines []string
}

// baseINI is a minimal valid configuration with one app of each provider.
func baseINI() ini {
	return ini{
		{"Server", nil},
		{"Database", []string{"user = pushd", "password = s3cret", "database = pushd"}},
		{"iOS", []string{
			"push_type = APNs",
			"environment = development",
			"bundle_id = com.example.app",
			"key_id = ABC123DEFG",
			"team_id = DEF123GHIJ",
			"auth_key_path = " + authKeyFile,
		}},
		{"Android", []string{
			"push_type = FCM",
			"service_account_file = " + serviceAccountFile,
		}},
	}
}

func (f ini) String() string {
	var b strings.Builder
	for _, s := range f {
		if s.name != "" {
			b.WriteString("[" + s.name + "]\n")
		}
		for _, l := range s.lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// set replaces the line of key in section, adding it (and the section) when
// absent. An empty line deletes the key.
func (f ini) set(section, key, line string) ini {
	f = f.clone()
	for i := range f {
		if f[i].name != section {
			continue
		}
		for j, l := range f[i].lines {
			if k, _, _ := strings.Cut(l, "="); strings.TrimSpace(k) == key {
				if line == "" {
					f[i].lines = append(f[i].lines[:j], f[i].lines[j+1:]...)
				} else {
					f[i].lines[j] = line
				}
				return f
			}
		}
		if line != "" {
			f[i].lines = append(f[i].lines, line)
		}
		return f
	}
	return append(f, iniSection{section, []string{line}})
}

// setLine sets the key of a "key = value" line in section.
func (f ini) setLine(section, line string) ini {
	k, _, _ := strings.Cut(line, "=")
	return f.set(section, strings.TrimSpace(k), line)
}

// add appends lines to section, creating it at the end when absent.
func (f ini) add(section string, lines ...string) ini {
	f = f.clone()
	for i := range f {
		if f[i].name == section {
			f[i].lines = append(f[i].lines, lines...)
			return f
		}
	}
	return append(f, iniSection{section, lines})
}

// without drops a section.
func (f ini) without(section string) ini {
	var out ini
	for _, s := range f.clone() {
		if s.name != section {
			out = append(out, s)
		}
	}
	return out
}

func (f ini) clone() ini {
	out := make(ini, len(f))
	for i, s := range f {
		out[i] = iniSection{s.name, append([]string(nil), s.lines...)}
	}
	return out
}

// parse parses f with key files in dir.
func (f ini) parse(t testing.TB, dir string) (*config.Config, error) {
	t.Helper()
	return config.Parse("config.ini", []byte(f.String()), dir)
}

// mustParse parses f and fails the test on any error.
func (f ini) mustParse(t testing.TB, dir string) *config.Config {
	t.Helper()
	cfg, err := f.parse(t, dir)
	if err != nil {
		t.Fatalf("Parse:\n%v\n--- config.ini ---\n%s", err, f)
	}
	return cfg
}

// validationErrors unpacks the error of Load or Parse, failing the test
// unless it is an errors.Join of *ValidationError only.
func validationErrors(t testing.TB, err error) []*config.ValidationError {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error is a %T, not an errors.Join: %v", err, err)
	}
	var out []*config.ValidationError
	for _, e := range joined.Unwrap() {
		ve, ok := e.(*config.ValidationError)
		if !ok {
			t.Fatalf("joined error is a %T, not a *config.ValidationError: %v", e, e)
		}
		out = append(out, ve)
	}
	if len(out) == 0 {
		t.Fatal("errors.Join of nothing")
	}
	var first *config.ValidationError
	if !errors.As(err, &first) || first != out[0] {
		t.Fatal("errors.As does not find the first *ValidationError")
	}
	return out
}

func x509MarshalPKCS1(k *rsa.PrivateKey) []byte { return x509.MarshalPKCS1PrivateKey(k) }
