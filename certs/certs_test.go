package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
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
