package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wstap/wstap/certs"
)

func TestCreateThenLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, created, err := certs.LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate: created=%v err=%v", created, err)
	}
	info, err := os.Stat(filepath.Join(dir, certs.KeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	again, created, err := certs.LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}
	if !again.Cert.Equal(ca.Cert) {
		t.Fatal("reloaded CA differs from the created one")
	}
	if !ca.Cert.IsCA || ca.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA certificate: IsCA=%v algorithm=%v", ca.Cert.IsCA, ca.Cert.PublicKeyAlgorithm)
	}
	if _, err := certs.Create(dir); err == nil {
		t.Fatal("Create overwrote an existing CA")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.Create(dir); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, certs.KeyFile)
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Load(dir); !errors.Is(err, certs.ErrKeyPermissions) {
		t.Fatalf("world-readable key: %v, want ErrKeyPermissions", err)
	}
	os.Chmod(keyPath, 0o600)
	if err := os.WriteFile(filepath.Join(dir, certs.CertFile), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Load(dir); err == nil {
		t.Fatal("garbage certificate accepted")
	}
	if _, _, err := certs.LoadOrCreate(filepath.Join(t.TempDir(), "only-key")); err != nil {
		t.Fatal(err)
	}
	half := t.TempDir()
	os.WriteFile(filepath.Join(half, certs.KeyFile), []byte("x"), 0o600)
	if _, _, err := certs.LoadOrCreate(half); err == nil {
		t.Fatal("a directory with a key and no certificate was accepted (or silently replaced)")
	}
}

// TestLoadCert reads the certificate alone, for export: it never creates a CA,
// and a key file others can read (or a missing one) is a warning, not an error.
func TestLoadCert(t *testing.T) {
	parent := t.TempDir()
	chmod(t, parent, 0o700)
	dir := filepath.Join(parent, "ca")
	ca, err := certs.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, certs.KeyFile)
	garbage := filepath.Join(parent, "garbage")
	if err := os.Mkdir(garbage, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(garbage, certs.CertFile), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(parent, "typo")
	cases := []struct {
		name      string
		dir       string
		keyMode   os.FileMode // 0: remove the key
		wantErr   error       // with anyErr: what the error wraps, if anything
		anyErr    bool
		wantWarns []string // what the one warning says; nil: no warning
	}{
		{"private key", dir, 0o600, nil, false, nil},
		{"key readable by others", dir, 0o644, nil, false, []string{"chmod 600 " + keyPath}},
		{"no key", dir, 0, nil, false, []string{keyPath, "missing"}},
		{"no CA", missing, 0o600, certs.ErrNoCA, true, nil},
		{"garbage certificate", garbage, 0o600, nil, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.dir == dir {
				if tc.keyMode == 0 {
					data, _ := os.ReadFile(keyPath)
					os.Remove(keyPath)
					defer os.WriteFile(keyPath, data, 0o600)
				} else {
					chmod(t, keyPath, tc.keyMode)
					defer chmod(t, keyPath, 0o600)
				}
			}
			cert, warnings, err := certs.LoadCert(tc.dir)
			switch {
			case tc.anyErr:
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !cert.Equal(ca.Cert) {
				t.Errorf("not the CA's certificate")
			}
			if (tc.wantWarns == nil) != (len(warnings) == 0) || len(warnings) > 1 {
				t.Fatalf("warnings %v, want %d", warnings, min(len(tc.wantWarns), 1))
			}
			for _, w := range tc.wantWarns {
				if !strings.Contains(warnings[0].Error(), w) {
					t.Errorf("warning %v does not mention %q", warnings[0], w)
				}
			}
			if tc.keyMode == 0o644 && (len(warnings) == 0 || !errors.Is(warnings[0], certs.ErrKeyPermissions)) {
				t.Errorf("warnings %v, want ErrKeyPermissions", warnings)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadCert created %s: %v", missing, err)
	}
}

// TestDirPermissionWarnings loads and creates CAs in directories with different
// modes: a directory others can write to (the CA's, or one above it without the
// sticky bit) is used, with a warning naming it, for the caller to show.
func TestDirPermissionWarnings(t *testing.T) {
	cases := []struct {
		name         string
		parent, mode os.FileMode // of the CA directory's parent and of the CA directory
		existing     bool        // a CA is created, then the modes set, then it is loaded
		warn         string      // the directory named in the one warning, "" for none
	}{
		{"private", 0o700, 0o700, false, ""},
		{"readable by all", 0o755, 0o755, false, ""},
		{"world-writable CA directory", 0o700, 0o777, false, "ca"},
		{"group-writable CA directory", 0o700, 0o770, false, "ca"},
		{"world-writable and sticky CA directory", 0o700, 0o1777, false, "ca"},
		{"world-writable parent", 0o777, 0o700, false, "parent"},
		{"world-writable sticky parent, as /tmp", 0o1777, 0o700, false, ""},
		{"existing CA, world-writable CA directory", 0o700, 0o777, true, "ca"},
		{"existing CA, group-writable parent", 0o770, 0o700, true, "parent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "parent")
			dir := filepath.Join(parent, "ca")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.existing {
				if _, err := certs.Create(dir); err != nil {
					t.Fatal(err)
				}
			}
			chmod(t, parent, tc.parent)
			chmod(t, dir, tc.mode)
			t.Cleanup(func() { os.Chmod(parent, 0o700); os.Chmod(dir, 0o700) })
			ca, created, err := certs.LoadOrCreate(dir)
			if err != nil || created == tc.existing {
				t.Fatalf("LoadOrCreate: created=%v, %v", created, err)
			}
			if tc.warn == "" {
				if len(ca.Warnings) != 0 {
					t.Errorf("warnings %v, want none", ca.Warnings)
				}
				return
			}
			want := map[string]string{"ca": dir, "parent": parent}[tc.warn]
			if len(ca.Warnings) != 1 || !errors.Is(ca.Warnings[0], certs.ErrDirPermissions) ||
				!strings.HasSuffix(ca.Warnings[0].Error(), "; run: chmod go-w "+want) {
				t.Errorf("warnings %v, want one wrapping ErrDirPermissions that names %s", ca.Warnings, want)
			}
		})
	}
}

// TestDirPermissionWarningsThroughSymlink reaches a private CA directory through a
// symbolic link in a world-writable directory: whoever can write there can point
// the link elsewhere.
func TestDirPermissionWarningsThroughSymlink(t *testing.T) {
	base := t.TempDir()
	real, open := filepath.Join(base, "real"), filepath.Join(base, "open")
	for _, d := range []string{real, open} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(open, "ca")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	chmod(t, open, 0o777)
	ca, _, err := certs.LoadOrCreate(link)
	if err != nil {
		t.Fatal(err)
	}
	if len(ca.Warnings) != 1 || !strings.Contains(ca.Warnings[0].Error(), open+",") {
		t.Errorf("warnings %v, want one naming %s", ca.Warnings, open)
	}
}

// chmod sets a mode exactly (umask does not apply).
func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	m := mode.Perm()
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	if err := os.Chmod(path, m); err != nil {
		t.Fatal(err)
	}
}

// TestLeafHandshake serves TLS with leaves for a DNS name and an IP address and
// verifies them from a client that trusts only the CA.
func TestLeafHandshake(t *testing.T) {
	ca, err := certs.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, tc := range []struct{ host, serverName string }{
		{"example.test:443", "example.test"},
		{"127.0.0.1:8443", ""},
		{"[::1]:443", ""},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			a, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			srv := tls.Server(a, ca.TLSConfig(tc.host))
			errc <- srv.Handshake()
			srv.Close()
		}()
		b, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		verifyHost, _, _ := net.SplitHostPort(tc.host)
		cli := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: verifyHost, NextProtos: []string{"h2", "http/1.1"}})
		if err := cli.Handshake(); err != nil {
			t.Fatalf("%s: client handshake: %v", tc.host, err)
		}
		if p := cli.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Errorf("%s: ALPN %q, want http/1.1", tc.host, p)
		}
		cli.Close()
		if err := <-errc; err != nil {
			t.Fatalf("%s: server handshake: %v", tc.host, err)
		}
		ln.Close()
	}
}

func TestLeafCachedAndMintedOnce(t *testing.T) {
	ca, err := certs.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]*tls.Certificate, 16)
	for i := range got {
		wg.Go(func() {
			c, err := ca.Leaf("Busy.Example.test:443")
			if err != nil {
				t.Error(err)
			}
			got[i] = c
		})
	}
	wg.Wait()
	for _, c := range got[1:] {
		if c != got[0] {
			t.Fatal("concurrent requests for one host minted different certificates")
		}
	}
	other, _ := ca.Leaf("other.example.test")
	if other == got[0] || other.Leaf.SerialNumber.Cmp(got[0].Leaf.SerialNumber) == 0 {
		t.Fatal("two hosts share a certificate or a serial number")
	}
	if got[0].Leaf.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %v looks too short for 128 random bits", got[0].Leaf.SerialNumber)
	}
}
