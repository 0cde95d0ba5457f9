package h2fake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

var (
	fakeCertOnce sync.Once
	fakeCert     tls.Certificate
	fakeCertPool *x509.CertPool
	fakeCertErr  error
)

// Cert returns a self-signed ECDSA certificate for 127.0.0.1 and
// localhost, valid from an hour ago for 48 hours, and a pool that trusts
// it. It is generated once per test binary and shared by every caller (do
// not modify either); it is safe for concurrent use. It fails t if the
// certificate cannot be made.
func Cert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	fakeCertOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			fakeCertErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "pushd transport test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(48 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			fakeCertErr = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			fakeCertErr = err
			return
		}
		fakeCertPool = x509.NewCertPool()
		fakeCertPool.AddCert(leaf)
		fakeCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	})
	if fakeCertErr != nil {
		t.Fatalf("generating test certificate: %v", fakeCertErr)
	}
	return fakeCert, fakeCertPool
}
