// Package certs is wstap's certificate authority: an ECDSA P-256 CA created once per
// installation and kept on disk, and leaf certificates minted on demand for the hosts
// the proxy intercepts.
//
// The CA lives in a directory as ca.pem (the certificate, to be trusted by the
// browser) and ca-key.pem (its private key, mode 0600). A key file that others can
// read is refused on load. A directory that others can write to (the CA's, or one
// above it without the sticky bit) lets them replace the CA: it is used, with a
// warning in [CA.Warnings] for the caller to show. Leaves are cached in a bounded
// LRU; concurrent requests for one host mint one certificate.
package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// File names inside a CA directory.
const (
	CertFile = "ca.pem"
	KeyFile  = "ca-key.pem"
)

// DirEnv is the environment variable that overrides the default CA directory.
const DirEnv = "WSTAP_CA_DIR"

// leafCacheSize bounds the number of cached leaf certificates.
const leafCacheSize = 1024

// Validity periods. Leaves stay under the 398 days browsers accept for server
// certificates and are backdated an hour to tolerate clock skew.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 397 * 24 * time.Hour
	backdate     = time.Hour
)

// ErrKeyPermissions is returned by [Load] when the CA key file can be read by users
// other than its owner.
var ErrKeyPermissions = errors.New("certs: CA key file is accessible to other users")

// ErrDirPermissions is wrapped by the warnings in [CA.Warnings] about directories
// that users other than the owner can write to: the CA directory, and directories
// above it without the sticky bit. Such users can swap in a CA of their own (or,
// before the browser trusts wstap's, one they hold the key of).
var ErrDirPermissions = errors.New("certs: other users can replace the CA")

// CA is a certificate authority that signs leaf certificates for intercepted hosts.
// It is safe for concurrent use.
type CA struct {
	// Cert is the CA certificate; Dir is where it is stored.
	Cert *x509.Certificate
	Dir  string

	// Warnings are problems found when the CA was loaded or created that did not
	// stop it: directories others can write to, each wrapping
	// [ErrDirPermissions]. The library does not print them; callers should.
	Warnings []error

	key    *ecdsa.PrivateKey
	leaves *lru.Cache[string, *tls.Certificate]
	flight singleflight.Group
}

// DefaultDir returns the CA directory: $WSTAP_CA_DIR when set, otherwise "wstap" in
// the user's configuration directory (e.g. ~/.config/wstap).
func DefaultDir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return d, nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("certs: no CA directory: %w (set %s)", err, DirEnv)
	}
	return filepath.Join(base, "wstap"), nil
}

// LoadOrCreate loads the CA in dir, creating the directory and a new CA when dir
// holds none. created reports whether a new CA was made.
func LoadOrCreate(dir string) (ca *CA, created bool, err error) {
	_, statErr := os.Stat(filepath.Join(dir, CertFile))
	_, keyErr := os.Stat(filepath.Join(dir, KeyFile))
	if errors.Is(statErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist) {
		ca, err := Create(dir)
		return ca, err == nil, err
	}
	ca, err = Load(dir)
	return ca, false, err
}

// Create makes a new CA and writes it to dir (created with mode 0700 if missing). It
// refuses to overwrite an existing CA. A directory that existed already keeps its
// mode; if others can write to it, [CA.Warnings] says so.
func Create(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: create CA directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "wstap CA (" + host + ")", Organization: []string{"wstap"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: sign CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode CA key: %w", err)
	}
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		os.Remove(keyPath)
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse new CA certificate: %w", err)
	}
	return newCA(dir, cert, key), nil
}

// dirWarnings returns a warning wrapping [ErrDirPermissions] for dir when users
// other than its owner can write to it, and for each directory above it that
// they can write to without the sticky bit (which keeps them from renaming or
// removing entries they do not own, as in /tmp). Symbolic links are followed:
// the directories above both the path and its target are checked.
func dirWarnings(dir string) []error {
	if runtime.GOOS == "windows" { // no Unix permission bits
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		real = abs
	}
	var warnings []error
	seen := map[string]bool{}
	for _, start := range []string{real, abs} {
		for d := start; !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
			info, err := os.Stat(d)
			if err != nil {
				continue
			}
			mode := info.Mode()
			switch {
			case mode.Perm()&0o022 == 0:
			case d == real || d == abs:
				warnings = append(warnings, fmt.Errorf("%w: the CA directory %s has mode %04o; run: chmod go-w %s",
					ErrDirPermissions, d, mode.Perm(), d))
			case mode&fs.ModeSticky == 0:
				warnings = append(warnings, fmt.Errorf("%w: %s, above the CA directory, has mode %04o and no sticky bit; run: chmod go-w %s",
					ErrDirPermissions, d, mode.Perm(), d))
			}
		}
	}
	return warnings
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

// Load reads the CA in dir. It fails with [ErrKeyPermissions] when the key file is
// readable or writable by group or others, and when the certificate is not a CA or
// does not belong to the key. A directory others can write to is reported in
// [CA.Warnings].
func Load(dir string) (*CA, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	info, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrKeyPermissions, keyPath, perm, keyPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: CA in %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("certs: CA key in %s is %T, want an ECDSA key", dir, pair.PrivateKey)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate in %s: %w", dir, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("certs: %s is not a CA certificate", certPath)
	}
	return newCA(dir, cert, key), nil
}

// ErrNoCA is returned by [LoadCert] when the directory holds no CA certificate.
var ErrNoCA = errors.New("certs: no CA")

// LoadCert reads the CA certificate in dir without its key, to export it: unlike
// [LoadOrCreate] it never creates a CA, and it fails with an error wrapping
// [ErrNoCA] when dir holds no certificate. The certificate is public, so a key
// file that others can read does not stop it: the warnings say so (wrapping
// [ErrKeyPermissions]), and list the directories others can write to, as
// [CA.Warnings] does, and a missing key file.
func LoadCert(dir string) (cert *x509.Certificate, warnings []error, err error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	data, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w in %s: %s does not exist", ErrNoCA, dir, certPath)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("certs: %s holds no PEM certificate", certPath)
	}
	if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("certs: %s is not a CA certificate", certPath)
	}
	switch info, err := os.Stat(keyPath); {
	case errors.Is(err, fs.ErrNotExist):
		warnings = append(warnings, fmt.Errorf("certs: the CA key %s is missing: wstap cannot sign with this CA", keyPath))
	case err != nil:
		warnings = append(warnings, fmt.Errorf("certs: CA key: %w", err))
	case info.Mode().Perm()&0o077 != 0:
		warnings = append(warnings, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrKeyPermissions, keyPath, info.Mode().Perm(), keyPath))
	}
	return cert, append(warnings, dirWarnings(dir)...), nil
}

func newCA(dir string, cert *x509.Certificate, key *ecdsa.PrivateKey) *CA {
	leaves, _ := lru.New[string, *tls.Certificate](leafCacheSize) // fails only for a size <= 0
	return &CA{Cert: cert, Dir: dir, Warnings: dirWarnings(dir), key: key, leaves: leaves}
}

// PEM returns the CA certificate in PEM form.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// DER returns the CA certificate in DER form.
func (ca *CA) DER() []byte { return bytes.Clone(ca.Cert.Raw) }

// CertPath returns the path of the CA certificate file.
func (ca *CA) CertPath() string { return filepath.Join(ca.Dir, CertFile) }

// Leaf returns a certificate for host (a DNS name or an IP address, with or without
// a port), signed by the CA, minting it on first use.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return nil, errors.New("certs: leaf certificate for an empty host name")
	}
	if c, ok := ca.leaves.Get(host); ok {
		return c, nil
	}
	v, err, _ := ca.flight.Do(host, func() (any, error) {
		if c, ok := ca.leaves.Get(host); ok {
			return c, nil
		}
		c, err := ca.mint(host)
		if err != nil {
			return nil, err
		}
		ca.leaves.Add(host, c)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

func (ca *CA) mint(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate leaf key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(leafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"wstap"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: sign leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse leaf for %s: %w", host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// newSerial returns a random 128-bit serial number.
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

// TLSConfig returns a server configuration that presents a leaf for the client's SNI
// name, or for host when the client sends none (an IP address), and offers only
// HTTP/1.1: WebSocket over HTTP/2 (RFC 8441) would bypass the proxy's 101 seam.
func (ca *CA) TLSConfig(host string) *tls.Config {
	return &tls.Config{
		NextProtos: []string{"http/1.1"},
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName != "" {
				return ca.Leaf(hello.ServerName)
			}
			return ca.Leaf(host)
		},
	}
}
