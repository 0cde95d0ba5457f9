package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Size limits for the files pushd reads: generous for the real thing, small
// enough that pointing a key at the wrong file fails quickly.
const (
	maxConfigSize = 1 << 20
	maxKeySize    = 64 << 10
	maxCASize     = 4 << 20
)

// resolve makes a path from the file absolute, relative to the
// configuration file's directory.
func (c *checker) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.baseDir, p)
}

// readFile reads the file that e names. It records a problem and returns
// ok == false when the file can't be read. For a secret file it warns when
// the group or other users may read it.
func (s *section) readFile(e *entry, maxSize int64, secret bool) (path string, data []byte, ok bool) {
	path = s.c.resolve(e.value)
	// Stat before opening: opening a FIFO would block `pushd check`.
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = &fs.PathError{Op: "open", Path: pe.Path, Err: pe.Err}
		}
		if strings.HasPrefix(e.value, "~") && errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w (~ is not expanded: write the full path)", err)
		}
		s.fail(e, err)
		return path, nil, false
	}
	if fi.IsDir() {
		s.fail(e, fmt.Errorf("%s is a directory: name the file in it", path))
		return path, nil, false
	}
	if !fi.Mode().IsRegular() {
		s.fail(e, fmt.Errorf("%s is not a regular file", path))
		return path, nil, false
	}
	f, err := os.Open(path)
	if err != nil {
		s.fail(e, err)
		return path, nil, false
	}
	defer f.Close()
	data, err = readLimited(f, maxSize)
	if err != nil {
		s.fail(e, fmt.Errorf("%s: %w", path, err))
		return path, nil, false
	}
	if secret && fi.Mode().Perm()&0o044 != 0 {
		s.warn(e, permError(path, fi.Mode(), "is readable by other users", "chmod 600 it"))
	}
	return path, data, true
}

// permError describes a file whose permissions are too open.
func permError(path string, mode fs.FileMode, what, fix string) error {
	return fmt.Errorf("%s %s (mode %04o); %s", path, what, mode.Perm(), fix)
}

// readLimited reads all of r, failing when it holds more than max bytes.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("is larger than %d KiB: is this the right file?", max>>10)
	}
	return data, nil
}

// parseCertificates parses a PEM bundle of CA certificates.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE: a CA bundle holds certificates only", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		if _, err := x509.ParseCertificate(data); err == nil {
			return nil, errors.New("is a DER certificate, not PEM: convert it with `openssl x509 -inform der -in FILE -out FILE.pem`")
		}
		return nil, errors.New(`holds no PEM certificate: expected "-----BEGIN CERTIFICATE-----" blocks`)
	}
	return certs, nil
}

// parseAuthKey parses an APNs auth key: Apple's .p8 file is a PEM "PRIVATE
// KEY" holding a PKCS#8 P-256 key for ES256.
func parseAuthKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			return nil, errors.New("is JSON, not a .p8 key (an FCM service-account file belongs in service_account_file of a push_type = FCM app)")
		}
		return nil, errors.New(`is not PEM: expected the AuthKey_<key_id>.p8 file from Apple, which starts with "-----BEGIN PRIVATE KEY-----"`)
	}
	switch block.Type {
	case "PRIVATE KEY":
	case "EC PRIVATE KEY":
		return nil, errors.New(`holds an "EC PRIVATE KEY" (SEC 1), not the PKCS#8 "PRIVATE KEY" of Apple's .p8 files: ` +
			"use the .p8 as downloaded, or convert with `openssl pkcs8 -topk8 -nocrypt -in OLD -out AuthKey.p8`")
	case "RSA PRIVATE KEY":
		return nil, errors.New("holds an RSA key: APNs token auth needs the P-256 EC key (.p8) from Apple")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("holds an encrypted key: Apple's .p8 keys are not encrypted; use the file as downloaded")
	case "CERTIFICATE":
		return nil, errors.New("holds a certificate: " + certificateMessage)
	default:
		return nil, fmt.Errorf(`holds a PEM %q block, not the "PRIVATE KEY" of Apple's .p8 files`, block.Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("is not a valid PKCS#8 key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("holds an EC key on curve %s: APNs needs a P-256 key (ES256), as in Apple's .p8 files", k.Curve.Params().Name)
		}
		return k, nil
	case *rsa.PrivateKey:
		return nil, errors.New("holds an RSA key: APNs token auth needs the P-256 EC key (.p8) from Apple")
	case ed25519.PrivateKey:
		return nil, errors.New("holds an Ed25519 key: APNs token auth needs the P-256 EC key (.p8) from Apple")
	default:
		return nil, fmt.Errorf("holds a %T: APNs token auth needs the P-256 EC key (.p8) from Apple", key)
	}
}

// parseRSAKey parses a service account's private_key: PEM PKCS#8 (what
// Google issues) or PKCS#1, holding an RSA key for RS256.
func parseRSAKey(s string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		if strings.Contains(s, `\n`) {
			return nil, errors.New(`private_key is not PEM: it holds literal \n sequences, so the JSON was escaped twice; download the key again`)
		}
		return nil, errors.New(`private_key is not PEM: expected "-----BEGIN PRIVATE KEY-----"; download the key again`)
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("private_key is not a valid PKCS#8 key: %w", err)
		}
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("private_key holds a %T, not an RSA key: download the key again", key)
		}
		return k, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("private_key is not a valid PKCS#1 RSA key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf(`private_key holds a PEM %q block, not a "PRIVATE KEY": download the key again`, block.Type)
}
